/**
 * Bad input on every HTTP endpoint: malformed JSON, wrong types, huge bodies, bad signatures and tokens, wrong
 * methods. Each case must get a 4xx, store nothing, and leave the server healthy. Prints how many cases were
 * tried per endpoint. Also: webhooks delivered twice at once and out of order.
 */
import crypto from "node:crypto";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mountLinear } from "../../src/integrations/linear/index.ts";
import { mountSlack } from "../../src/integrations/slack/index.ts";
import { hashToken } from "../../src/runs/tokens.ts";
import { agentSessionPromptedPayload, type FakeLinear, postLinearWebhook, signLinearBody, startFakeLinear } from "../fakes/linear.ts";
import { type FakeSlack, messageEnvelope, postSlackEvent, signSlackRequest, startFakeSlack } from "../fakes/slack.ts";
import { startTestServer, type TestServer } from "../helpers/harness.ts";
import { sleep, until } from "./helpers.ts";
import { CHANNEL, LINEAR_SECRET, linearEnv, linearSession, SLACK_SECRET, slackEnv, slackMention, TEAM } from "./surfaces.ts";
import { forceRunRow } from "../helpers/force-run-row.ts";

const MAX_BODY = 65_536;
const TABLES = ["runs", "run_inputs", "run_events", "run_digests", "deliveries", "conversations", "notifications", "surface_state", "installations"];

interface Case {
  endpoint: string;
  name: string;
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

describe("fuzzing every endpoint", () => {
  let srv: TestServer;
  let slack: FakeSlack;
  let linear: FakeLinear;
  let runId: string;
  const RELAY_TOKEN = "relay-token-for-fuzzing-0001";

  const counts = async () => {
    const out: Record<string, number> = {};
    for (const t of TABLES) {
      const r = (await srv.deckhand.database.db.execute(sql.raw(`select count(*)::int as n from ${t}`))) as any;
      out[t] = Number((Array.isArray(r) ? r : r.rows)[0].n);
    }
    return out;
  };

  beforeAll(async () => {
    slack = await startFakeSlack();
    linear = await startFakeLinear();
    linear.addTeam(TEAM);
    // The fuzz sends many wrong tokens from one address: lift the brute-force lockout (tested in tests/web/front-door.test.ts)
    // so every case reaches the validation it is meant to probe instead of a 429.
    srv = await startTestServer({ noReconciler: true, env: { MAX_BODY_BYTES: String(MAX_BODY), AUTH_FAILURES_PER_WINDOW: "100000", ...slackEnv(slack), ...linearEnv(linear) }, mount: async (d) => {
        await mountSlack(d);
        await mountLinear(d);
      },
    });
    const run = await srv.deckhand.store.create({ repo: "demo", prompt: "fuzz target", source: "api" });
    await forceRunRow(srv.deckhand.store.db, run.id, { status: "running", relayTokenHash: hashToken(RELAY_TOKEN) });
    runId = run.id;
  });
  afterAll(async () => {
    await srv?.close();
    await slack?.close();
    await linear?.close();
  });

  it("every malformed, oversized, unsigned or unauthorised request gets a 4xx; nothing is stored; the server stays healthy", async () => {
    const api = { authorization: `Bearer ${srv.deckhand.apiToken}`, "content-type": "application/json" };
    const relay = { authorization: `Bearer ${RELAY_TOKEN}`, "content-type": "application/json" };
    const json = { "content-type": "application/json" };
    const big = (n: number) => JSON.stringify({ prompt: "x".repeat(n), repo: "demo" });
    const deep = "[".repeat(20_000) + "]".repeat(20_000);
    const malformed: [string, string | Buffer][] = [
      ["truncated JSON", '{"prompt": "x", "repo":'],
      ["not JSON", "hello there"],
      ["JSON null", "null"],
      ["JSON array", "[]"],
      ["JSON string", '"prompt"'],
      ["JSON number", "1e999"],
      ["prototype pollution", '{"__proto__": {"admin": true}, "constructor": {"prototype": {"x": 1}}}'],
      ["deep nesting", deep],
      ["invalid UTF-8", Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])],
      ["lone surrogate", '{"prompt": "\\ud800", "repo": 5}'],
      ["empty body", ""],
    ];
    const cases: Case[] = [];
    const add = (endpoint: string, method: string, path: string, name: string, headers?: Record<string, string>, body?: string | Buffer) =>
      cases.push({ endpoint, name, method, path, headers, body });

    // --- the API (bearer token)
    for (const [name, body] of malformed) add("POST /api/runs", "POST", "/api/runs", name, api, body);
    const wrongTypes: [string, unknown][] = [
      ["prompt number", { prompt: 42, repo: "demo" }],
      ["prompt array", { prompt: ["a"], repo: "demo" }],
      ["prompt object", { prompt: { a: 1 }, repo: "demo" }],
      ["repo number", { prompt: "x", repo: 1 }],
      ["repo unknown", { prompt: "x", repo: "../../etc" }],
      ["ref injection", { prompt: "x", repo: "demo", ref: "main; rm -rf /" }],
      ["ref option", { prompt: "x", repo: "demo", ref: "--upload-pack=evil" }],
      ["prompt blank", { prompt: " \n\t ", repo: "demo" }],
    ];
    for (const [name, body] of wrongTypes) add("POST /api/runs", "POST", "/api/runs", name, api, JSON.stringify(body));
    add("POST /api/runs", "POST", "/api/runs", `body over MAX_BODY_BYTES`, api, big(MAX_BODY + 10));
    add("POST /api/runs", "POST", "/api/runs", "form-encoded garbage", { ...api, "content-type": "application/x-www-form-urlencoded" }, "prompt&&&==%zz");
    add("POST /api/runs", "POST", "/api/runs", "text/plain", { ...api, "content-type": "text/plain" }, '{"prompt":"x","repo":"demo"}');
    for (const [name, auth] of [
      ["no token", undefined],
      ["wrong token", "Bearer wrong-token-0123456789"],
      ["empty bearer", "Bearer "],
      ["basic auth", `Basic ${Buffer.from("a:b").toString("base64")}`],
      ["token prefix", `Bearer ${srv.deckhand.apiToken.slice(0, -1)}`],
      ["token in other case", `Bearer ${srv.deckhand.apiToken.toUpperCase()}`],
    ] as const) {
      add("POST /api/runs", "POST", "/api/runs", name, { ...json, ...(auth ? { authorization: auth } : {}) }, JSON.stringify({ prompt: "x", repo: "demo" }));
      add("GET /api/runs", "GET", "/api/runs", name, auth ? { authorization: auth } : {});
      add("POST /api/runs/:id/inputs", "POST", `/api/runs/${runId}/inputs`, name, { ...json, ...(auth ? { authorization: auth } : {}) }, JSON.stringify({ text: "hi" }));
      add("POST /api/runs/:id/stop", "POST", `/api/runs/${runId}/stop`, name, { ...json, ...(auth ? { authorization: auth } : {}) }, "{}");
    }
    for (const q of ["limit=-1", "limit=abc", "limit=100000", "status=" + "x".repeat(5000), "status=queued,running", "repo=" + "r".repeat(5000) + "&limit=0"]) add("GET /api/runs", "GET", `/api/runs?${q}`, `query ${q.slice(0, 20)}`, api);
    for (const id of ["r-doesnotexist", "'; drop table runs; --", "%00", "a".repeat(3000)]) add("GET /api/runs/:id", "GET", `/api/runs/${encodeURIComponent(id)}`, `id ${id.slice(0, 12)}`, api);
    for (const q of ["after=-5", "after=x", "after=99999999999", "waitMs=99999999", "waitMs=-1"]) add("GET /api/runs/:id/events", "GET", `/api/runs/${runId}/events?${q}`, q, api);
    for (const [name, body] of [...malformed, ["text number", '{"text": 5}'], ["text blank", '{"text": "   "}'], ["huge", JSON.stringify({ text: "z".repeat(MAX_BODY + 1) })]] as [string, string | Buffer][]) {
      add("POST /api/runs/:id/inputs", "POST", `/api/runs/${runId}/inputs`, name, api, body);
    }
    add("POST /api/runs/:id/inputs", "POST", "/api/runs/r-nope/inputs", "unknown run", api, '{"text":"hi"}');
    add("POST /api/runs/:id/stop", "POST", "/api/runs/r-nope/stop", "unknown run", api, "{}");

    // --- the relay (per-run token)
    const ev = (o: Record<string, unknown>) => JSON.stringify({ events: [{ seq: 1, type: "x", at: new Date().toISOString(), data: {}, ...o }] });
    for (const [name, body] of [
      ...malformed,
      ["events not array", '{"events": {}}'],
      ["seq negative", ev({ seq: -1 })],
      ["seq zero", ev({ seq: 0 })],
      ["seq float", ev({ seq: 1.5 })],
      ["seq string", ev({ seq: "1" })],
      ["seq huge", ev({ seq: 2 ** 40 })],
      ["type empty", ev({ type: "" })],
      ["type huge", ev({ type: "t".repeat(1000) })],
      ["at invalid", ev({ at: "yesterday" })],
      ["data not object", ev({ data: [1, 2] })],
      ["too many events", JSON.stringify({ events: Array.from({ length: 5001 }, (_, i) => ({ seq: i + 1, type: "x", at: new Date().toISOString(), data: {} })) })],
    ] as [string, string | Buffer][]) {
      add("POST /relay/v1/runs/:id/events", "POST", `/relay/v1/runs/${runId}/events`, name, relay, body);
    }
    add("POST /relay/v1/runs/:id/events", "POST", `/relay/v1/runs/${runId}/events`, "body over 32 MB", relay, Buffer.alloc(33 * 1024 * 1024, 0x20));
    for (const [name, body] of [...malformed, ["alive string", '{"at":"now","opencodeAlive":"yes"}'], ["pending negative", '{"at":"now","opencodeAlive":true,"outboxPending":-1}']] as [string, string | Buffer][]) {
      add("POST /relay/v1/runs/:id/heartbeat", "POST", `/relay/v1/runs/${runId}/heartbeat`, name, relay, body);
    }
    for (const q of ["after=-1", "after=abc", "after=99999999999", "waitMs=999999", "waitMs=-3"]) add("GET /relay/v1/runs/:id/commands", "GET", `/relay/v1/runs/${runId}/commands?${q}`, q, relay);
    for (const [name, body] of [...malformed, ["seq zero", '{"seq":0}'], ["seq string", '{"seq":"2"}']] as [string, string | Buffer][]) {
      add("POST /relay/v1/runs/:id/commands/ack", "POST", `/relay/v1/runs/${runId}/commands/ack`, name, relay, body);
    }
    for (const [name, auth] of [
      ["no token", undefined],
      ["wrong token", "Bearer not-the-relay-token"],
      ["API token", `Bearer ${srv.deckhand.apiToken}`],
    ] as const) {
      const h = { ...json, ...(auth ? { authorization: auth } : {}) };
      add("POST /relay/v1/runs/:id/events", "POST", `/relay/v1/runs/${runId}/events`, name, h, ev({}));
      add("POST /relay/v1/runs/:id/heartbeat", "POST", `/relay/v1/runs/${runId}/heartbeat`, name, h, '{"at":"now","opencodeAlive":true}');
      add("GET /relay/v1/runs/:id/commands", "GET", `/relay/v1/runs/${runId}/commands?waitMs=0`, name, auth ? { authorization: auth } : {});
      add("POST /relay/v1/runs/:id/commands/ack", "POST", `/relay/v1/runs/${runId}/commands/ack`, name, h, '{"seq":1}');
    }
    add("POST /relay/v1/runs/:id/events", "POST", `/relay/v1/runs/r-other/events`, "token of another run", relay, ev({}));

    // --- Slack (signing secret over the raw body and timestamp)
    const mention = JSON.stringify(messageEnvelope({ text: `<@${slack.botUserId}> do it`, channel: CHANNEL }));
    const slackSigned = (body: string | Buffer, o: { secret?: string; ts?: number } = {}) => ({
      ...json,
      ...signSlackRequest(o.secret ?? SLACK_SECRET, body.toString(), o.ts),
    });
    for (const [name, body] of malformed) add("POST /slack/events", "POST", "/slack/events", `signed ${name}`, slackSigned(body), body);
    add("POST /slack/events", "POST", "/slack/events", "unsigned", json, mention);
    add("POST /slack/events", "POST", "/slack/events", "wrong secret", slackSigned(mention, { secret: "nope" }), mention);
    add("POST /slack/events", "POST", "/slack/events", "stale timestamp", slackSigned(mention, { ts: Math.floor(Date.now() / 1000) - 600 }), mention);
    add("POST /slack/events", "POST", "/slack/events", "future timestamp", slackSigned(mention, { ts: Math.floor(Date.now() / 1000) + 600 }), mention);
    add("POST /slack/events", "POST", "/slack/events", "signature for another body", slackSigned(mention + " "), mention);
    add("POST /slack/events", "POST", "/slack/events", "huge signed body", slackSigned("x".repeat(6 * 1024 * 1024)), "x".repeat(6 * 1024 * 1024));
    add("POST /slack/events", "GET", "/slack/events", "wrong method", {});

    // --- Linear (HMAC of the raw body, webhookTimestamp)
    const linearSigned = (body: string | Buffer, secret = LINEAR_SECRET) => ({ ...json, "linear-signature": signLinearBody(secret, body.toString()), "linear-delivery": crypto.randomUUID() });
    const prompted = JSON.stringify(agentSessionPromptedPayload({ sessionId: crypto.randomUUID(), issueId: "issue-x", body: "hi", appUserId: linear.appUserId, organizationId: linear.organizationId }));
    for (const [name, body] of malformed) add("POST /linear/webhook", "POST", "/linear/webhook", `signed ${name}`, linearSigned(body), body);
    add("POST /linear/webhook", "POST", "/linear/webhook", "unsigned", json, prompted);
    add("POST /linear/webhook", "POST", "/linear/webhook", "wrong secret", linearSigned(prompted, "nope"), prompted);
    const stale = JSON.stringify({ ...JSON.parse(prompted), webhookTimestamp: Date.now() - 10 * 60_000 });
    add("POST /linear/webhook", "POST", "/linear/webhook", "stale timestamp", linearSigned(stale), stale);
    const noTs = JSON.stringify({ ...JSON.parse(prompted), webhookTimestamp: undefined });
    add("POST /linear/webhook", "POST", "/linear/webhook", "no timestamp", linearSigned(noTs), noTs);
    add("POST /linear/webhook", "POST", "/linear/webhook", "huge signed body", linearSigned("y".repeat(6 * 1024 * 1024)), "y".repeat(6 * 1024 * 1024));
    add("POST /linear/webhook", "GET", "/linear/webhook", "wrong method", {});
    // Signed, well-formed JSON, wrong shapes: each exactly 400 (checked again below).
    const sessionString = JSON.stringify({ ...JSON.parse(prompted), agentSession: "not-an-object" });
    add("POST /linear/webhook", "POST", "/linear/webhook", "agentSession is a string", linearSigned(sessionString), sessionString);
    const eventString = JSON.stringify({ ...JSON.parse(mention), event: "not-an-object" });
    add("POST /slack/events", "POST", "/slack/events", "event is a string", slackSigned(eventString), eventString);
    add("GET /linear/oauth/callback", "GET", "/linear/oauth/callback?code=abc&state=forged", "forged state", {});
    add("GET /linear/oauth/callback", "GET", "/linear/oauth/callback", "no code", {});
    add("GET /linear/oauth/callback", "GET", "/linear/oauth/callback?error=access_denied", "denied", {});

    // --- the web pages' forms (session cookie)
    for (const p of [`/runs/${runId}/follow-up`, `/runs/${runId}/stop`, `/runs/${runId}/rotate-link`, "/logout"]) {
      add(`POST ${p.replace(runId, ":id")}`, "POST", p, "no session", { "content-type": "application/x-www-form-urlencoded" }, "text=hi");
      add(`POST ${p.replace(runId, ":id")}`, "POST", p, "forged session", { "content-type": "application/x-www-form-urlencoded", cookie: "deckhand_session=forged.value" }, "text=hi");
    }
    add("POST /login", "POST", "/login", "wrong token", { "content-type": "application/x-www-form-urlencoded", origin: srv.url }, "token=wrong");
    add("POST /login", "POST", "/login", "cross-site", { "content-type": "application/x-www-form-urlencoded", origin: "https://evil.example" }, `token=${srv.deckhand.apiToken}`);
    add("POST /login", "POST", "/login", "huge", { "content-type": "application/x-www-form-urlencoded", origin: srv.url }, `token=${"a".repeat(MAX_BODY + 1)}`);
    add("GET /r/:token", "GET", "/r/not-a-real-token", "unknown page token", {});
    add("GET /assets/:name", "GET", "/assets/..%2f..%2fpackage.json", "path traversal", {});

    // --- wrong methods and unknown paths
    for (const [m, p] of [["PUT", "/api/runs"], ["DELETE", `/api/runs/${runId}`], ["PATCH", "/healthz"], ["POST", "/nope"], ["GET", "/relay/v1/runs/x/events"]] as const) {
      add(`${m} ${p.replace(runId, ":id")}`, m, p, "wrong method / unknown path", api, m === "GET" ? undefined : "{}");
    }

    const before = await counts();
    const [runBefore] = await srv.deckhand.database.db.execute(sql`select status, last_event_seq, last_heartbeat_at from runs where id = ${runId}`).then((r: any) => (Array.isArray(r) ? r : r.rows));
    const report = new Map<string, { tried: number; statuses: Record<number, number> }>();
    const failures: string[] = [];
    for (const c of cases) {
      let status: number;
      try {
        const res = await fetch(`${srv.url}${c.path}`, { method: c.method, headers: c.headers, body: c.body as BodyInit | undefined, redirect: "manual", signal: AbortSignal.timeout(20_000) });
        status = res.status;
        await res.arrayBuffer().catch(() => {});
      } catch (e) {
        status = -1;
        failures.push(`${c.endpoint} [${c.name}]: no answer (${(e as Error).message})`);
      }
      const r = report.get(c.endpoint) ?? { tried: 0, statuses: {} };
      r.tried++;
      r.statuses[status] = (r.statuses[status] ?? 0) + 1;
      report.set(c.endpoint, r);
      if (status !== -1 && (status < 400 || status > 499)) failures.push(`${c.endpoint} [${c.name}]: ${status}`);
    }
    const lines = [...report.entries()].map(([e, r]) => `  ${e.padEnd(40)} ${String(r.tried).padStart(3)} cases  ${JSON.stringify(r.statuses)}`);
    console.log(`[fuzz] ${cases.length} cases on ${report.size} endpoints:\n${lines.join("\n")}${failures.length ? `\nNOT 4xx:\n  ${failures.join("\n  ")}` : "\nevery case got a 4xx"}`);

    expect(failures).toEqual([]);
    expect(await counts()).toEqual(before);
    for (const c of cases.filter((x) => x.name === "agentSession is a string" || x.name === "event is a string")) {
      const res = await fetch(`${srv.url}${c.path}`, { method: c.method, headers: { ...c.headers, ...(c.headers?.["linear-delivery"] ? { "linear-delivery": crypto.randomUUID() } : {}) }, body: c.body as BodyInit });
      expect(res.status, c.name).toBe(400);
    }
    expect(await counts()).toEqual(before);
    const [runAfter] = await srv.deckhand.database.db.execute(sql`select status, last_event_seq, last_heartbeat_at from runs where id = ${runId}`).then((r: any) => (Array.isArray(r) ? r : r.rows));
    expect(runAfter).toEqual(runBefore);
    expect((await fetch(`${srv.url}/healthz`)).status).toBe(200);
    expect((await srv.api("GET", "/api/runs")).status).toBe(200);
    expect(slack.calls.filter((c) => c.method.startsWith("chat."))).toEqual([]);
    expect(linear.activities).toEqual([]);
  }, 120_000);

  it("webhooks delivered twice at once, and out of order, start one run each and never crash", async () => {
    // Linear: a prompt for a session that does not exist yet (arrives before its `created`), then `created` twice at once.
    const s = linearSession(linear, "ordering");
    const early = await postLinearWebhook(`${srv.url}/linear/webhook`, LINEAR_SECRET, agentSessionPromptedPayload({ sessionId: s.sessionId, issueId: s.issue.id, body: "early reply", appUserId: linear.appUserId, organizationId: linear.organizationId }));
    expect(early.status).toBe(200);
    const [a, b, c] = await Promise.all([s.deliver(srv.url), s.deliver(srv.url), s.deliver(srv.url, { newDeliveryId: true })]);
    expect([a.status, b.status, c.status]).toEqual([200, 200, 200]);
    // Slack: a thread reply before its mention; then the mention twice at once (the second as Slack's retry).
    const m = slackMention(slack, "please do the thing");
    const reply = messageEnvelope({ text: "and also this", channel: CHANNEL, thread_ts: m.ts });
    expect((await postSlackEvent(`${srv.url}/slack/events`, SLACK_SECRET, reply)).status).toBe(200);
    const [x, y] = await Promise.all([m.deliver(srv.url), m.deliver(srv.url, 1)]);
    expect([x.status, y.status]).toEqual([200, 200]);
    await sleep(1000);
    const runs = await srv.deckhand.store.list({ limit: 500 });
    expect(runs.filter((r) => (r.sourceRef as any).agentSessionId === s.sessionId)).toHaveLength(1);
    expect(runs.filter((r) => r.source === "slack" && (r.sourceRef as any).messageTs === m.ts)).toHaveLength(1);
    // The late `created` after the run exists is still one run; the server is healthy.
    expect((await s.deliver(srv.url, { newDeliveryId: true })).status).toBe(200);
    await until("health", async () => (await fetch(`${srv.url}/healthz`)).ok);
    expect((await srv.deckhand.store.list({ limit: 500 })).filter((r) => (r.sourceRef as any).agentSessionId === s.sessionId)).toHaveLength(1);
  }, 60_000);
});
