/**
 * Test harness: a real Deckhand server (real database, real sandboxes, real OpenCode, real git) on loopback,
 * with the scripted model server as the only stand-in.
 */
import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import postgres from "postgres";
import { createDeckhand, type Deckhand } from "../../src/app.ts";
import { loadConfig } from "../../src/config/config.ts";
import { createLogger } from "../../src/log/logger.ts";
import { startModelServer, type ModelServer, type ModelHandler } from "../fakes/model-server.ts";

export const PG_ADMIN_URL = process.env.TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

export function tmpDir(prefix = "deckhand-test-"): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

const git = (args: string[], cwd: string) => execFileSync("git", args, { cwd, stdio: "pipe", env: { ...process.env, GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@t", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@t" } }).toString().trim();

/** A bare repository with one commit on main: the "remote" of a run. */
export function makeRepo(files: Record<string, string> = { "README.md": "# demo\n" }): { bare: string; git: (args: string[]) => string } {
  const root = tmpDir("deckhand-repo-");
  const work = path.join(root, "work");
  const bare = path.join(root, "remote.git");
  fs.mkdirSync(work);
  git(["init", "-q", "-b", "main"], work);
  for (const [f, c] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(work, f)), { recursive: true });
    fs.writeFileSync(path.join(work, f), c);
  }
  git(["add", "-A"], work);
  git(["commit", "-q", "-m", "initial"], work);
  git(["clone", "-q", "--bare", work, bare], root);
  return { bare, git: (args) => git(args, bare) };
}

/** A fresh Postgres database for one test file; dropped by the returned function. */
export async function freshPostgres(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `deckhand_t_${crypto.randomBytes(5).toString("hex")}`;
  const admin = postgres(PG_ADMIN_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  await admin.end();
  const url = PG_ADMIN_URL.replace(/\/[^/]*$/, `/${name}`);
  return {
    url,
    drop: async () => {
      const a = postgres(PG_ADMIN_URL, { max: 1, onnotice: () => {} });
      await a.unsafe(`drop database if exists ${name} with (force)`).catch(() => {});
      await a.end();
    },
  };
}

export interface TestServer {
  deckhand: Deckhand;
  url: string;
  model: ModelServer;
  dataDir: string;
  api<T = any>(method: string, p: string, body?: unknown, token?: string | null): Promise<{ status: number; body: T }>;
  waitFor(id: string, statuses: string[], timeoutMs?: number): Promise<any>;
  close(): Promise<void>;
}

export async function startTestServer(opts: {
  handler?: ModelHandler;
  model?: ModelServer;
  repos?: Record<string, string>;
  database?: "pglite" | "postgres";
  databaseUrl?: string;
  env?: Record<string, string>;
  dataDir?: string;
  reconcileIntervalMs?: number;
  /** The server's logger (e.g. one writing to a buffer, to check what was logged). */
  log?: import("../../src/log/logger.ts").Logger;
  /** Serve HTTP only: no reconciler (tests that drive runs by hand). */
  noReconciler?: boolean;
  /** Mount integrations (mountSlack, mountLinear, mountIntegrations...) before the server listens. */
  mount?: (deckhand: Deckhand) => Promise<unknown>;
} = {}): Promise<TestServer> {
  const model = opts.model ?? (await startModelServer({ handler: opts.handler }));
  const port = await freePort();
  const dataDir = opts.dataDir ?? tmpDir();
  let pg: { url: string; drop: () => Promise<void> } | null = null;
  let databaseUrl = opts.databaseUrl;
  if (!databaseUrl && opts.database === "postgres") {
    pg = await freshPostgres();
    databaseUrl = pg.url;
  }
  const repos = opts.repos ?? { demo: makeRepo().bare };
  const env: Record<string, string> = {
    PORT: String(port),
    HOST: "127.0.0.1",
    DATA_DIR: dataDir,
    REPOS: Object.entries(repos).map(([k, v]) => `${k}=${v}`).join(","),
    LLM_BASE_URL: model.baseUrl,
    LLM_MODEL: "m",
    LLM_API_KEY: "test-key",
    API_TOKEN: "test-api-token-0123456789",
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "warn",
    HEARTBEAT_INTERVAL_SECONDS: "2",
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    ...opts.env,
  };
  const config = loadConfig(env);
  const deckhand = await createDeckhand(config, { log: opts.log ?? createLogger({ level: env.LOG_LEVEL }), reconcileIntervalMs: opts.reconcileIntervalMs ?? 1000, noReconciler: opts.noReconciler });
  await opts.mount?.(deckhand).catch(async (e) => {
    await deckhand.close();
    throw e;
  });
  const url = await deckhand.listen();
  const api = async (method: string, p: string, body?: unknown, token: string | null = config.API_TOKEN!) => {
    const send = () => fetch(`${url}${p}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { "content-type": "application/json" } : {}) },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    // A GET may meet a keep-alive socket the server closed a moment ago (ECONNRESET): it is safe to send again.
    const res = await send().catch((e) => (method === "GET" ? send() : Promise.reject(e)));
    const text = await res.text();
    let parsed: any = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not json */
    }
    return { status: res.status, body: parsed };
  };
  return {
    deckhand,
    url,
    model,
    dataDir,
    api,
    async waitFor(id, statuses, timeoutMs = 60_000) {
      const end = Date.now() + timeoutMs;
      let last: any;
      while (Date.now() < end) {
        last = (await api("GET", `/api/runs/${id}`)).body;
        if (statuses.includes(last.status)) return last;
        await deckhand.bus.waitForRun(id, 500);
      }
      throw new Error(`run ${id} did not reach ${statuses.join("/")} in ${timeoutMs} ms; it is ${last?.status} (${last?.reason ?? ""}) phases=${JSON.stringify(last?.phases?.map((p: any) => p.phase))}`);
    },
    async close() {
      // Production keeps sandboxes across restarts; a test leaves nothing behind.
      for (const sb of await deckhand.provider.list()) await deckhand.provider.destroy(sb.id);
      await deckhand.close();
      if (!opts.model) await model.close();
      await pg?.drop();
    },
  };
}

/** Is the test Postgres reachable? Tests that need it skip with a printed reason when it is not. */
export async function postgresAvailable(): Promise<boolean> {
  const sql = postgres(PG_ADMIN_URL, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await sql`select 1`;
    return true;
  } catch (e) {
    console.warn(`SKIPPING Postgres tests: no server at ${PG_ADMIN_URL} (${(e as Error).message}). Start one or set TEST_PG_URL.`);
    return false;
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}

/** Sign in to the web pages with the API token, as `name`: the session cookie and the page's CSRF token. */
export async function signInToWeb(url: string, token: string, name: string): Promise<{ cookie: string; csrf: string }> {
  const res = await fetch(`${url}/login`, {
    method: "POST",
    redirect: "manual",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ token, name, next: "/" }).toString(),
  });
  const cookie = (res.headers.get("set-cookie") ?? "").split(";")[0]!;
  const page = await (await fetch(`${url}/`, { headers: { cookie } })).text();
  const csrf = /name="_csrf" value="([^"]+)"/.exec(page)?.[1];
  if (res.status !== 303 || !cookie || !csrf) throw new Error(`could not sign in to ${url} (HTTP ${res.status})`);
  return { cookie, csrf };
}
