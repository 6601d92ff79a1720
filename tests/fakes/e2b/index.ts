// A fake of E2B for tests: the control plane (REST, `X-API-KEY`) and the in-sandbox daemon envd
// (Connect RPC + /files), both on 127.0.0.1, running REAL child processes, one host folder per sandbox.
//
// Point the real `e2b` SDK (2.51.0) at it with
//   { apiKey: fake.apiKey, apiUrl: fake.apiUrl, sandboxUrl: fake.sandboxUrl }
// per call, bound once with `new E2B({ apiKey, apiUrl, sandboxUrl })` (then `client.Sandbox.create(...)`),
// or through the environment: E2B_API_KEY, E2B_API_URL, E2B_SANDBOX_URL (read on every SDK call).
// `apiUrl` alone is not enough: without `sandboxUrl` the SDK talks to envd at https://49983-<id>.<domain>.
// All sandboxes share the one sandboxUrl; envd requests are routed by their `E2b-Sandbox-Id` header.
//
// Path mapping: see sandbox.ts. The sandbox's "/" is `<root>/<sandboxId>/`, its HOME (and the default cwd)
// is `<root>/<sandboxId>/home/user`; sandbox paths given to the SDK (files API, `cwd`) are mapped under it.
// Ports: sandbox processes listen on host ports. `sandbox.getHost(port)` gives `<port>-<id>.<domain>`; a
// request to sandboxUrl whose Host header is that (or that carries `E2b-Sandbox-Port: <port>`) is proxied to
// 127.0.0.1:<port>.
//
// What the SDK (2.51.0) throws against it (all classes exported by "e2b"):
//   wrong API key (401)              -> AuthenticationError "Unauthorized, please check your credentials. - <message>"
//   unknown template on create (404) -> SandboxError "404: template '<name>' not found" (statusCode 404)
//   quota (failNext 429)             -> RateLimitError "Rate limit exceeded, please try again later - <message>"
//   503                              -> ServiceBusyError; other statuses -> SandboxError "<status>: <message>"
//   sandbox not found: kill() -> false; connect/getInfo/setTimeout/pause -> SandboxNotFoundError;
//   envd on a dead sandbox (502): commands.run -> SandboxNotFoundError "Sandbox is probably not running
//   anymore", files.* -> TimeoutError, isRunning() -> false; a command in flight when the sandbox dies ->
//   TimeoutError "... The sandbox was killed or reached its end of life while the request was in flight."
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { handleEnvd } from "./envd.ts";
import { FakeSandbox, findMarkedPids } from "./sandbox.ts";
import { parseJson, readBody, sendApiError, sendEmpty, sendJson } from "./wire.ts";

export { FakeSandbox } from "./sandbox.ts";

export const ENVD_VERSION = "0.5.7";
export const ENVD_PORT = 49983;

export type FailKind = "create" | "connect" | "list" | "kill" | "*";

export interface FakeE2BCall {
  method: string;
  path: string;
  at: number;
  /** "api" = control plane, "envd" = in-sandbox daemon (or a proxied sandbox port). */
  plane: "api" | "envd";
  sandboxId?: string;
}

export interface FakeE2BSandboxInfo {
  id: string;
  templateId: string;
  metadata: Record<string, string>;
  state: "running" | "paused" | "killed";
  /** host folder that is the sandbox's "/" (HOME is `<dir>/home/user`) */
  dir: string;
  /** epoch ms when the lifetime (`timeout`) expires */
  endAt: number;
}

export interface FakeE2B {
  apiUrl: string;
  sandboxUrl: string;
  domain: string;
  apiKey: string;
  /** control-plane and envd calls, in arrival order, for counting "E2B API calls per run" */
  calls: FakeE2BCall[];
  sandboxes(): FakeE2BSandboxInfo[];
  /**
   * The next `n` control-plane calls of `kind` ("*" = any control-plane call) fail with `mode.status` and
   * E2B's error body `{"code":status,"message":mode.message}`. With `retryAfter` (seconds) a `Retry-After`
   * header is added, and the SDK then retries 429s by itself (up to 3 times): leave it out to see the error.
   */
  failNext(kind: FailKind, n: number, mode: { status: number; message: string; retryAfter?: number }): void;
  /** simulates "sandbox died": kills its processes; the control plane then answers 404 and envd 502 */
  killSandboxFromOutside(id: string): void;
  /** known templates; default {"deckhand"} */
  templates: Set<string>;
  /** host path for a sandbox path (e.g. "/home/user/repo" -> "<dir>/home/user/repo") */
  hostPath(id: string, sandboxPath: string): string;
  /** pids of live host processes started in the sandbox (including escaped descendants) */
  pids(id: string): number[];
  /** kills every process and sandbox, stops the servers, removes the root if the fake created it */
  close(): Promise<void>;
}

export interface FakeE2BOptions {
  apiKey?: string;
  /** folder holding one subfolder per sandbox; default: a fresh temp folder (removed on close) */
  root?: string;
  templates?: string[];
  /** lifetime when create/connect send no `timeout`; E2B's API default is 15 s */
  defaultTimeoutSec?: number;
}

function randomId(len: number): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = randomBytes(len);
  let s = "";
  for (let i = 0; i < len; i++) s += alphabet[bytes[i] % alphabet.length];
  return s;
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port));
  });
}

export async function startFakeE2B(opts: FakeE2BOptions = {}): Promise<FakeE2B> {
  const apiKey = opts.apiKey ?? "e2b_fake_" + randomId(24);
  const ownRoot = !opts.root;
  const root = opts.root ?? mkdtempSync(join(tmpdir(), "fake-e2b-"));
  mkdirSync(root, { recursive: true });
  const defaultTimeoutSec = opts.defaultTimeoutSec ?? 15;
  const templates = new Set(opts.templates ?? ["deckhand"]);
  const all = new Map<string, FakeSandbox>();
  const order = new Map<string, number>();
  let seq = 0;
  const calls: FakeE2BCall[] = [];
  const failures: { kind: FailKind; left: number; mode: { status: number; message: string; retryAfter?: number } }[] = [];
  let domain = "";

  const live = (id: string): FakeSandbox | undefined => {
    const sb = all.get(id);
    return sb && sb.state !== "killed" ? sb : undefined;
  };

  const onExpire = (sb: FakeSandbox) => {
    if (sb.state !== "running") return;
    if (sb.autoPause) sb.pause();
    else sb.kill();
  };

  function timeoutSec(body: any): number | undefined {
    if (body?.timeout === undefined || body?.timeout === null) return undefined;
    const t = Number(body.timeout);
    return Number.isFinite(t) && t >= 0 ? t : undefined;
  }

  function detail(sb: FakeSandbox) {
    return {
      templateID: sb.templateId,
      alias: sb.templateId,
      sandboxID: sb.id,
      clientID: sb.clientId,
      startedAt: new Date(sb.startedAt).toISOString(),
      endAt: new Date(sb.endAt).toISOString(),
      cpuCount: 2,
      memoryMB: 512,
      diskSizeMB: 10240,
      metadata: sb.metadata,
      state: sb.state,
      envdVersion: ENVD_VERSION,
      volumeMounts: [],
    };
  }

  function created(sb: FakeSandbox) {
    return {
      sandboxID: sb.id,
      templateID: sb.templateId,
      alias: sb.templateId,
      clientID: sb.clientId,
      envdVersion: ENVD_VERSION,
      envdAccessToken: sb.envdAccessToken,
      trafficAccessToken: sb.trafficAccessToken,
      domain,
    };
  }

  function failKind(method: string, path: string): FailKind | undefined {
    if (method === "POST" && path === "/v2/sandboxes") return "create";
    if (method === "POST" && /^\/(v2\/sandboxes\/[^/]+\/connect|sandboxes\/[^/]+\/resume)$/.test(path)) return "connect";
    if (method === "GET" && (path === "/v2/sandboxes" || path === "/sandboxes")) return "list";
    if (method === "DELETE" && /^\/sandboxes\/[^/]+$/.test(path)) return "kill";
    return undefined;
  }

  // ---------------------------------------------------------------- control plane
  async function api(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const path = url.pathname.replace(/\/+$/, "") || "/";
    const method = req.method ?? "GET";
    calls.push({ method, path, at: Date.now(), plane: "api" });

    if (req.headers["x-api-key"] !== apiKey) return sendApiError(res, 401, "Invalid API key, please visit https://e2b.dev/docs/api-key");

    const kind = failKind(method, path);
    const rule = failures.find((f) => f.left > 0 && (f.kind === "*" || f.kind === kind));
    if (rule) {
      rule.left--;
      if (rule.left <= 0) failures.splice(failures.indexOf(rule), 1);
      return sendApiError(res, rule.mode.status, rule.mode.message, rule.mode.retryAfter !== undefined ? { "retry-after": String(rule.mode.retryAfter) } : {});
    }

    const body = method === "POST" || method === "PUT" ? parseJson(await readBody(req)) : {};
    if (body === undefined) return sendApiError(res, 400, "request body is not valid JSON");

    // create
    if (method === "POST" && path === "/v2/sandboxes") {
      const templateId = String(body.templateID ?? "");
      if (!templates.has(templateId)) return sendApiError(res, 404, `template '${templateId}' not found`);
      const t = timeoutSec(body) ?? defaultTimeoutSec;
      if (t > 86_400) return sendApiError(res, 400, "Timeout cannot be greater than 24 hours");
      const id = randomId(20);
      const sb = new FakeSandbox({
        id,
        templateId,
        metadata: { ...(body.metadata ?? {}) },
        envVars: { ...(body.envVars ?? {}) },
        dir: join(root, id),
        envdAccessToken: randomId(32),
        trafficAccessToken: randomId(32),
        timeoutSec: t,
        autoPause: body.autoPause === true,
        autoResume: body.autoResume?.enabled === true,
        onExpire,
      });
      all.set(id, sb);
      order.set(id, seq++);
      return sendJson(res, 201, created(sb));
    }

    // list (v2: running + paused, filters, cursor pagination via the x-next-token header)
    if (method === "GET" && (path === "/v2/sandboxes" || path === "/sandboxes")) {
      let states = url.searchParams
        .getAll("state")
        .flatMap((s) => s.split(","))
        .filter(Boolean);
      if (path === "/sandboxes") states = ["running"];
      const wanted: [string, string][] = [];
      const meta = url.searchParams.get("metadata");
      if (meta) for (const [k, v] of new URLSearchParams(meta)) wanted.push([safeDecode(k), safeDecode(v)]);
      const template = url.searchParams.get("template");
      const startedAfter = url.searchParams.get("startedAfter");
      const asc = url.searchParams.get("order") === "asc";
      let items = [...all.values()].filter(
        (sb) =>
          sb.state !== "killed" &&
          (states.length === 0 || states.includes(sb.state)) &&
          wanted.every(([k, v]) => sb.metadata[k] === v) &&
          (!template || sb.templateId === template) &&
          (!startedAfter || sb.startedAt > Date.parse(startedAfter)),
      );
      items.sort((a, b) => (asc ? 1 : -1) * ((order.get(a.id) ?? 0) - (order.get(b.id) ?? 0)));
      if (path === "/sandboxes") return sendJson(res, 200, items.map(detail));
      const limit = Math.min(100, Math.max(1, Number(url.searchParams.get("limit") ?? 100) || 100));
      const token = url.searchParams.get("nextToken");
      const offset = token ? Number(Buffer.from(token, "base64url").toString()) || 0 : 0;
      const page = items.slice(offset, offset + limit);
      const headers: Record<string, string> = {};
      if (offset + limit < items.length) headers["x-next-token"] = Buffer.from(String(offset + limit)).toString("base64url");
      return sendJson(res, 200, page.map(detail), headers);
    }

    // connect / resume
    let m = /^\/v2\/sandboxes\/([^/]+)\/connect$/.exec(path) ?? /^\/sandboxes\/([^/]+)\/resume$/.exec(path);
    if (method === "POST" && m) {
      const sb = live(m[1]);
      if (!sb) return sendApiError(res, 404, `sandbox "${m[1]}" not found`);
      const t = timeoutSec(body) ?? defaultTimeoutSec;
      if (sb.state === "paused") {
        sb.resume(t);
        return sendJson(res, 201, created(sb));
      }
      if (path.endsWith("/resume")) return sendApiError(res, 409, `sandbox "${sb.id}" is already running`);
      // a running sandbox's lifetime is only ever extended by connect
      if (Date.now() + t * 1000 > sb.endAt) sb.setTimeoutSec(t);
      return sendJson(res, 200, created(sb));
    }

    m = /^\/sandboxes\/([^/]+)(\/[a-z]+)?$/.exec(path);
    if (m) {
      const sb = live(m[1]);
      if (!sb) return sendApiError(res, 404, `sandbox "${m[1]}" not found`);
      const sub = m[2] ?? "";
      if (method === "GET" && sub === "") return sendJson(res, 200, { ...detail(sb), envdAccessToken: sb.envdAccessToken, domain, lifecycle: { onTimeout: sb.autoPause ? "pause" : "kill", autoResume: sb.autoResume } });
      if (method === "DELETE" && sub === "") {
        sb.kill();
        return sendEmpty(res, 204);
      }
      if (method === "POST" && sub === "/timeout") {
        const t = timeoutSec(body);
        if (t === undefined) return sendApiError(res, 400, "timeout is required");
        if (sb.state === "running") sb.setTimeoutSec(t);
        else sb.endAt = Date.now() + t * 1000;
        return sendEmpty(res, 204);
      }
      if (method === "POST" && sub === "/refreshes") {
        const t = Number(body.duration ?? defaultTimeoutSec);
        if (Date.now() + t * 1000 > sb.endAt) sb.setTimeoutSec(t);
        return sendEmpty(res, 204);
      }
      if (method === "POST" && sub === "/pause") {
        if (sb.state === "paused") return sendApiError(res, 409, `sandbox "${sb.id}" is already paused`);
        sb.pause();
        return sendEmpty(res, 204);
      }
      if (method === "GET" && sub === "/metrics") return sendJson(res, 200, []);
    }
    return sendApiError(res, 404, `no route for ${method} ${path}`);
  }

  // ---------------------------------------------------------------- envd (+ sandbox port proxy)
  async function sandboxPlane(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const host = String(req.headers.host ?? "");
    const hostMatch = /^(\d+)-([a-z0-9]+)\./.exec(host);
    const id = String(req.headers["e2b-sandbox-id"] ?? hostMatch?.[2] ?? "");
    const port = Number(req.headers["e2b-sandbox-port"] ?? hostMatch?.[1] ?? ENVD_PORT);
    calls.push({ method: req.method ?? "GET", path: url.pathname, at: Date.now(), plane: "envd", sandboxId: id || undefined });

    const sb = live(id);
    if (sb?.state === "paused" && sb.autoResume) sb.resume(defaultTimeoutSec);
    if (!sb) return sendJson(res, 502, { code: 502, message: `The sandbox ${id} was not found`, sandboxId: id });
    if (sb.state === "paused") return sendJson(res, 502, { code: 502, message: `The sandbox ${id} is paused`, sandboxId: id });
    if (port !== ENVD_PORT) return proxy(req, res, port);
    return handleEnvd(sb, req, res, url);
  }

  function proxy(req: IncomingMessage, res: ServerResponse, port: number): void {
    const headers = { ...req.headers, host: `127.0.0.1:${port}` };
    const out = httpRequest({ host: "127.0.0.1", port, method: req.method, path: req.url, headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    out.on("error", (e) => {
      if (!res.headersSent) sendJson(res, 502, { code: 502, message: `connection to port ${port} failed: ${e.message}`, port });
      else res.destroy();
    });
    req.pipe(out);
  }

  const wrap = (fn: (req: IncomingMessage, res: ServerResponse) => Promise<void>) => (req: IncomingMessage, res: ServerResponse) => {
    fn(req, res).catch((e) => {
      if (!res.headersSent) sendApiError(res, 500, `fake E2B: ${(e as Error).message}`);
      else res.destroy();
    });
  };
  const apiServer = createServer(wrap(api));
  const sandboxServer = createServer(wrap(sandboxPlane));
  const apiPort = await listen(apiServer);
  const sandboxPort = await listen(sandboxServer);
  domain = `localhost:${sandboxPort}`;

  let closed = false;
  return {
    apiUrl: `http://127.0.0.1:${apiPort}`,
    sandboxUrl: `http://127.0.0.1:${sandboxPort}`,
    domain,
    apiKey,
    calls,
    templates,
    sandboxes: () => [...all.values()].map((sb) => sb.toJSON()),
    failNext(kind, n, mode) {
      if (n > 0) failures.push({ kind, left: n, mode });
    },
    killSandboxFromOutside(id) {
      all.get(id)?.kill();
    },
    hostPath(id, sandboxPath) {
      const sb = all.get(id);
      if (!sb) throw new Error(`unknown sandbox ${id}`);
      return sb.toHost(sandboxPath);
    },
    pids(id) {
      return findMarkedPids(id);
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const sb of all.values()) sb.kill();
      await Promise.all(
        [apiServer, sandboxServer].map(
          (s) =>
            new Promise<void>((resolve) => {
              s.close(() => resolve());
              s.closeAllConnections();
            }),
        ),
      );
      if (ownRoot) rmSync(root, { recursive: true, force: true });
    },
  };
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
