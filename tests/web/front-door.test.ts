/**
 * The front door, tried as an attacker would: every registered route (collected by the server's onRoute hook,
 * Slack's and Linear's included) under many spellings of its URL, without credentials; the relay's uploads
 * without a token; brute-forcing the API token and the sign-in; revoked sessions; /healthz; bad `next`.
 */
import http from "node:http";
import { count } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runInputs, runs } from "../../src/db/schema.ts";
import { mountLinear } from "../../src/integrations/linear/index.ts";
import { mountSlack } from "../../src/integrations/slack/index.ts";
import { startFakeLinear, type FakeLinear } from "../fakes/linear.ts";
import { startFakeSlack, type FakeSlack } from "../fakes/slack.ts";
import { postgresAvailable, startTestServer, type TestServer } from "../helpers/harness.ts";

const database = (await postgresAvailable()) ? "postgres" : "pglite";
const PROMPT = "FRONT-DOOR-SECRET-PROMPT";

/** Routes anyone may use (no data behind them). Every other route must refuse a stranger. */
// Deliberately public: health probes (load balancers, orchestrators), the sign-in page and static files.
/**
 * Routes guarded by what they serve rather than by a session or token: Slack's and Linear's signed webhooks and
 * the OAuth callback (a signed `state`). Under any spelling the router gives them, their own checks refuse a
 * stranger (400 bad or missing signature / state, 401, 405 wrong method, 415 not a Slack body).
 */
const SELF_GUARDED = new Set(["POST /slack/events", "POST /linear/webhook", "GET /linear/webhook", "HEAD /linear/webhook", "GET /linear/oauth/callback", "HEAD /linear/oauth/callback"]);
const PUBLIC = new Set(["GET /healthz", "HEAD /healthz", "GET /livez", "HEAD /livez", "GET /readyz", "HEAD /readyz", "GET /login", "HEAD /login", "POST /login", "GET /assets/:name", "HEAD /assets/:name", "GET /favicon.ico", "HEAD /favicon.ico"]);

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** Send a request with the path exactly as spelled (fetch would normalise it). */
function raw(base: string, method: string, path: string, opts: { body?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method, path, agent: false, headers: { ...(opts.body ? { "content-type": "application/json", "content-length": Buffer.byteLength(opts.body) } : {}), ...opts.headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
    });
    req.on("error", reject);
    req.end(opts.body);
  });
}

/** The same path, spelled in the ways a router and a string test disagree about. */
export function spellings(path: string): string[] {
  const segs = path.split("/").slice(1);
  const out = new Set<string>([path, `/${path}`, `${path}/`, `${path};`, `/x/..${path}`, `/x/%2e%2e${path}`]);
  segs.forEach((seg, i) => {
    const m = /[a-z]/i.exec(seg);
    if (m) {
      const enc = seg.slice(0, m.index) + `%${seg.charCodeAt(m.index).toString(16)}` + seg.slice(m.index + 1);
      out.add(`/${[...segs.slice(0, i), enc, ...segs.slice(i + 1)].join("/")}`);
    }
    out.add(`/${[...segs.slice(0, i), seg.toUpperCase(), ...segs.slice(i + 1)].join("/")}`);
    out.add(`/${[...segs.slice(0, i + 1), ".", ...segs.slice(i + 1)].join("/")}`);
    out.add(`/${[...segs.slice(0, i), `${seg};x`, ...segs.slice(i + 1)].join("/")}`);
  });
  return [...out];
}

describe(`front door (${database})`, () => {
  let srv: TestServer;
  let slack: FakeSlack;
  let linear: FakeLinear;
  let run: { id: string; url: string };
  const db = () => srv.deckhand.database.db;
  const counts = async () => ({
    runs: Number((await db().select({ n: count() }).from(runs))[0]!.n),
    inputs: Number((await db().select({ n: count() }).from(runInputs))[0]!.n),
  });

  beforeAll(async () => {
    slack = await startFakeSlack();
    linear = await startFakeLinear();
    srv = await startTestServer({
      database,
      noReconciler: true,
      env: {
        AUTH_FAILURES_PER_WINDOW: "5",
        SLACK_SIGNING_SECRET: "slack-signing-secret-front-door",
        SLACK_BOT_TOKEN: slack.token,
        SLACK_API_URL: slack.apiUrl,
        SLACK_BOT_ID: slack.botId,
        SLACK_BOT_USER_ID: slack.botUserId,
        LINEAR_WEBHOOK_SECRET: "linear-webhook-secret-front-door",
        LINEAR_API_URL: linear.apiUrl,
        LINEAR_CLIENT_ID: "client-id",
        LINEAR_CLIENT_SECRET: "client-secret-0123456789",
      },
      mount: async (d) => {
        await mountSlack(d);
        await mountLinear(d);
      },
    });
    run = (await srv.api("POST", "/api/runs", { repo: "demo", prompt: PROMPT })).body;
  }, 240_000);
  afterAll(async () => {
    await srv?.close();
    await slack?.close();
    await linear?.close();
  });

  it("every route refuses a stranger under every spelling of its URL: 401, 404 or the sign-in page, never data", async () => {
    const routes = srv.deckhand.routes;
    expect(routes.length).toBeGreaterThan(20);
    // The API as the issue found it open, plus Slack's and Linear's routes, are among the walked routes.
    for (const r of ["GET /api/runs", "POST /api/runs", "POST /api/runs/:id/stop", "POST /relay/v1/runs/:runId/events", "POST /slack/events", "POST /linear/webhook", "GET /linear/oauth/install"]) {
      expect(routes.map((x) => `${x.method} ${x.url}`)).toContain(r);
    }
    const before = await counts();
    const body = JSON.stringify({ repo: "demo", prompt: "PWNED", text: "PWNED", events: [], seq: 1, at: new Date().toISOString(), opencodeAlive: true });
    const problems: string[] = [];
    let tried = 0;
    for (const r of routes) {
      const key = `${r.method} ${r.url}`;
      if (PUBLIC.has(key)) continue;
      const path = r.url.replace(/:id\b|:runId\b/g, run.id).replace(/:token\b/g, "x".repeat(32)).replace(/:name\b/g, "app.js");
      const method = r.method;
      for (const p of spellings(path)) {
        const res = await raw(srv.url, method, p, method === "POST" ? { body } : {});
        tried++;
        const refused = res.status === 401 || res.status === 404 || res.status === 429 || (res.status === 303 && String(res.headers.location).startsWith("/login"));
        const ownCheck = SELF_GUARDED.has(key) && [400, 401, 403, 405, 415].includes(res.status);
        if ((!refused && !ownCheck) || res.body.includes(PROMPT)) problems.push(`${key}: ${method} ${p} → ${res.status} ${res.body.slice(0, 120)}`);
      }
    }
    expect(problems).toEqual([]);
    expect(tried).toBeGreaterThan(300);
    // Nothing was started, steered or stopped.
    expect(await counts()).toEqual(before);
    expect((await srv.api("GET", `/api/runs/${run.id}`)).body.status).toBe("queued");
  }, 300_000);

  it("/healthz: {ok} to anyone; the details only with the API token", async () => {
    const anon = await raw(srv.url, "GET", "/healthz");
    expect(anon.status).toBe(200);
    expect(JSON.parse(anon.body)).toEqual({ ok: true });
    const wrong = await raw(srv.url, "GET", "/healthz", { headers: { authorization: "Bearer not-the-token-at-all" } });
    expect(JSON.parse(wrong.body)).toEqual({ ok: true });
    const full = await srv.api("GET", "/healthz");
    expect(full.status).toBe(200);
    expect(full.body).toMatchObject({ ok: true, database: database, model: "deckhand-llm/m" });
    expect(full.body.sandboxBreaker).toBeTruthy();
  });

  it("relay uploads without a token are refused before their body is read: forty 30 MB posts, each 401", async () => {
    const size = 30 * 1024 * 1024;
    const u = new URL(srv.url);
    const chunk = Buffer.alloc(256 * 1024, 0x61);
    const cpu0 = process.cpuUsage();
    const one = () =>
      new Promise<{ status: number; sent: number }>((resolve) => {
        let sent = 0;
        let status = 0;
        let done = false;
        const finish = () => {
          if (done) return;
          done = true;
          resolve({ status, sent });
        };
        const req = http.request(
          { host: u.hostname, port: u.port, method: "POST", path: `/relay/v1/runs/${run.id}/events`, agent: false, headers: { "content-type": "application/json", "content-length": size } },
          (res) => {
            status = res.statusCode!;
            res.resume();
            res.on("end", () => {
              req.destroy();
              finish();
            });
          },
        );
        req.on("error", finish);
        req.on("close", finish);
        const pump = () => {
          while (!done && sent < size) {
            sent += chunk.length;
            if (!req.write(chunk)) return void req.once("drain", pump);
          }
          if (!done) req.end();
        };
        pump();
      });
    const results = await Promise.all(Array.from({ length: 40 }, one));
    const cpu = process.cpuUsage(cpu0);
    console.log(`relay flood: ${results.length} posts, ${(results.reduce((n, r) => n + r.sent, 0) / 1048576).toFixed(1)} MB pushed by the client, ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s CPU`);
    for (const r of results) expect(r.status).toBe(401);
    // The client could not push the bodies through: the server answered and closed instead of reading 1.2 GB.
    const total = results.reduce((n, r) => n + r.sent, 0);
    expect(total).toBeLessThan(40 * size * 0.25);
    // A bound of work (client and server share this process): nowhere near parsing 1.2 GB of JSON.
    expect((cpu.user + cpu.system) / 1e6).toBeLessThan(10);
    expect(await counts()).toMatchObject({ runs: 1 });
  }, 120_000);

  it("signing out ends the session: the old cookie opens nothing afterwards", async () => {
    const signIn = await fetch(`${srv.url}/login`, { method: "POST", redirect: "manual", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams({ token: srv.deckhand.apiToken, name: "Ana" }).toString() });
    expect(signIn.status).toBe(303);
    const cookie = signIn.headers.get("set-cookie")!.split(";")[0]!;
    const list = await fetch(`${srv.url}/`, { headers: { cookie }, redirect: "manual" });
    expect(list.status).toBe(200);
    const csrf = /name="_csrf" value="([^"]+)"/.exec(await list.text())![1]!;
    const out = await fetch(`${srv.url}/logout`, { method: "POST", redirect: "manual", headers: { cookie, "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams({ _csrf: csrf }).toString() });
    expect(out.status).toBe(303);
    // Someone who kept a copy of the cookie is signed out too.
    const again = await fetch(`${srv.url}/`, { headers: { cookie }, redirect: "manual" });
    expect(again.status).toBe(303);
    expect(again.headers.get("location")).toMatch(/^\/login/);
    expect((await fetch(`${srv.url}/runs/${run.id}/diff.patch`, { headers: { cookie } })).status).toBe(401);
  });

  it("/login?next= with control characters is a 400, not a 500", async () => {
    for (const next of ["%0d%0aSet-Cookie:%20x=1", "/%00", "/runs%7f"]) {
      const res = await raw(srv.url, "GET", `/login?next=${next}`);
      expect(res.status, next).toBe(400);
      expect(JSON.parse(res.body).error).toMatch(/next/);
    }
    const post = await raw(srv.url, "POST", "/login", { body: JSON.stringify({ token: "x", next: "/\u0001" }) });
    expect(post.status).toBe(400);
    // A plain path is still followed after sign-in.
    expect((await raw(srv.url, "GET", "/login?next=/runs/abc")).status).toBe(200);
  });

  it("brute force: wrong bearer tokens and sign-ins from one address get 429 with Retry-After, even for the right token", async () => {
    // Each scenario from its own loopback address, so the rest of this file (127.0.0.1) is not locked out.
    const from = (addr: string, method: string, path: string, headers: Record<string, string>, body?: string) =>
      new Promise<Answer>((resolve, reject) => {
        const u = new URL(srv.url);
        const req = http.request({ host: u.hostname, port: u.port, method, path, localAddress: addr, agent: false, headers: { ...headers, ...(body ? { "content-length": Buffer.byteLength(body) } : {}) } }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
        });
        req.on("error", reject);
        req.end(body);
      });
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) statuses.push((await from("127.0.0.2", "GET", "/api/runs", { authorization: `Bearer guess-${i}-0123456789abcdef` })).status);
    expect(statuses.slice(0, 5)).toEqual([401, 401, 401, 401, 401]);
    expect(statuses.slice(5)).toEqual([429, 429]);
    const right = await from("127.0.0.2", "GET", "/api/runs", { authorization: `Bearer ${srv.deckhand.apiToken}` });
    expect(right.status).toBe(429);
    expect(Number(right.headers["retry-after"])).toBeGreaterThan(0);
    // Another address is not affected.
    expect((await srv.api("GET", "/api/runs")).status).toBe(200);

    const form = { "content-type": "application/x-www-form-urlencoded" };
    const signIns: number[] = [];
    for (let i = 0; i < 6; i++) signIns.push((await from("127.0.0.3", "POST", "/login", form, `token=wrong-${i}`)).status);
    expect(signIns).toEqual([401, 401, 401, 401, 401, 429]);
    const rightSignIn = await from("127.0.0.3", "POST", "/login", form, `token=${srv.deckhand.apiToken}`);
    expect(rightSignIn.status).toBe(429);
    expect(Number(rightSignIn.headers["retry-after"])).toBeGreaterThan(0);
  }, 60_000);
});
