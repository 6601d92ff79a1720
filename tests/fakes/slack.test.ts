/**
 * Proves tests/fakes/slack.ts against the real @slack/bolt App and @slack/web-api WebClient:
 * signed events in (Bolt's HTTPReceiver verifies them), Web API calls out (the fake records them).
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { App, HTTPReceiver, LogLevel, webApi } from "@slack/bolt";
import Fastify from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DEFAULT_USER_ID,
  type FakeSlack,
  mentionEnvelope,
  messageEnvelope,
  postSlackEvent,
  signSlackRequest,
  startFakeSlack,
  triggerId,
  urlVerification,
} from "./slack.ts";

const SECRET = "8f742231b10e8888abcd99yyyzzz85a5";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** WebClient logs Slack's response_metadata "[ERROR] ..." messages (e.g. for invalid_blocks); keep output clean. */
function quietLogger(): any {
  const noop = () => {};
  return { debug: noop, info: noop, warn: noop, error: noop, setLevel: noop, getLevel: () => "error", setName: noop };
}

interface Seen {
  kind: "mention" | "dm";
  event: any;
  retryNum?: number;
  retryReason?: string;
}

/** A Bolt app wired the way Deckhand will wire it: token + botId + botUserId (no auth.test), API at the fake. */
function boltApp(fake: FakeSlack, seen: Seen[], extra: Record<string, unknown> = {}) {
  const app = new App({
    token: fake.token,
    signingSecret: SECRET,
    botId: fake.botId,
    botUserId: fake.botUserId,
    logLevel: LogLevel.ERROR,
    clientOptions: { slackApiUrl: fake.apiUrl },
    ...extra,
  });
  app.event("app_mention", async ({ event, client, context }) => {
    seen.push({ kind: "mention", event, retryNum: context.retryNum, retryReason: context.retryReason });
    if (context.retryNum !== undefined) return; // a retry of an event already handled
    const threadTs = event.thread_ts ?? event.ts;
    await client.reactions.add({ channel: event.channel, timestamp: event.ts, name: "eyes" });
    await client.chat.postMessage({ channel: event.channel, thread_ts: threadTs, text: `on it: ${event.text}` });
  });
  app.message(async ({ message, client }) => {
    const m = message as any;
    if (m.channel_type !== "im" || m.subtype) return;
    seen.push({ kind: "dm", event: m });
    await client.chat.postMessage({ channel: m.channel, thread_ts: m.ts, text: `dm: ${m.text}` });
  });
  return app;
}

describe("fake Slack with the real Bolt App (HTTPReceiver on its own port)", () => {
  let fake: FakeSlack;
  let app: App;
  let url: string;
  const seen: Seen[] = [];

  beforeAll(async () => {
    fake = await startFakeSlack();
    app = boltApp(fake, seen);
    const server = (await app.start({ port: 0, host: "127.0.0.1" })) as http.Server;
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/slack/events`;
  });
  afterAll(async () => {
    await app?.stop();
    await fake?.close();
  });

  it("answers url_verification with the challenge", async () => {
    const r = await postSlackEvent(url, SECRET, urlVerification("chal-123"));
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ challenge: "chal-123" });
  });

  it("delivers a signed app_mention; the listener's postMessage + reactions.add land in the fake", async () => {
    const env = mentionEnvelope({ text: "fix the login bug", channel: "C0PROJECT1", botUserId: fake.botUserId });
    expect(env.event.text).toBe(`<@${fake.botUserId}> fix the login bug`);
    const r = await postSlackEvent(url, SECRET, env);
    expect(r.status).toBe(200); // acked before the listener runs

    const post = await fake.waitFor((c) => c.method === "chat.postMessage" && c.args.thread_ts === env.event.ts);
    expect(post.args).toMatchObject({ channel: "C0PROJECT1", text: `on it: <@${fake.botUserId}> fix the login bug` });
    expect(post.token).toBe(fake.token);
    expect(fake.reactions).toContainEqual({ channel: "C0PROJECT1", timestamp: env.event.ts, name: "eyes", op: "add" });
    expect(fake.reactionsOn("C0PROJECT1", env.event.ts)).toEqual(["eyes"]);
    const thread = fake.threadMessages("C0PROJECT1", env.event.ts);
    expect(thread).toHaveLength(1);
    expect(thread[0]).toMatchObject({ text: post.args.text, edits: 0, user: fake.botUserId });
    // botId + botUserId given: Bolt never called auth.test.
    expect(fake.calls.some((c) => c.method === "auth.test")).toBe(false);
    expect(seen.at(-1)).toMatchObject({ kind: "mention", retryNum: undefined });
  });

  it("rejects a bad signature with 401 and runs nothing", async () => {
    const before = fake.requests.length;
    const n = seen.length;
    const env = mentionEnvelope({ text: "evil", botUserId: fake.botUserId });
    const r = await postSlackEvent(url, SECRET, env, { badSignature: true });
    expect(r.status).toBe(401);
    await sleep(200);
    expect(seen.length).toBe(n);
    expect(fake.requests.length).toBe(before);
  });

  it("rejects a stale (> 5 min) but correctly signed request with 401", async () => {
    const n = seen.length;
    const env = mentionEnvelope({ text: "replayed", botUserId: fake.botUserId });
    const stale = Math.floor(Date.now() / 1000) - 6 * 60;
    const r = await postSlackEvent(url, SECRET, env, { timestampSec: stale });
    expect(r.status).toBe(401);
    // 4 minutes old is still accepted.
    const ok = await postSlackEvent(url, SECRET, mentionEnvelope({ text: "recent", botUserId: fake.botUserId }), {
      timestampSec: Math.floor(Date.now() / 1000) - 4 * 60,
    });
    expect(ok.status).toBe(200);
    await fake.waitFor((c) => c.method === "chat.postMessage" && String(c.args.text).endsWith("recent"));
    expect(seen.slice(n).map((s) => s.event.text)).toEqual([`<@${fake.botUserId}> recent`]);
  });

  it("a 429 with retry-after on chat.postMessage is retried by the WebClient and lands exactly once", async () => {
    fake.failNext("chat.postMessage", 1, { status: 429, retryAfterSec: 1 });
    const env = mentionEnvelope({ text: "rate me", channel: "C0PROJECT1", botUserId: fake.botUserId });
    const t0 = Date.now();
    expect((await postSlackEvent(url, SECRET, env)).status).toBe(200);
    const post = await fake.waitFor((c) => c.method === "chat.postMessage" && c.args.thread_ts === env.event.ts, 10_000);
    expect(post.at - t0).toBeGreaterThanOrEqual(1000); // waited out retry-after
    const attempts = fake.requests.filter((r) => r.method === "chat.postMessage" && r.args.thread_ts === env.event.ts);
    expect(attempts.map((a) => a.status)).toEqual([429, 200]);
    expect(attempts[0]).toMatchObject({ injected: true, error: "ratelimited" });
    expect(fake.threadMessages("C0PROJECT1", env.event.ts)).toHaveLength(1);
  });

  it("x-slack-retry-num / x-slack-retry-reason reach context.retryNum / retryReason", async () => {
    const env = mentionEnvelope({ text: "again", botUserId: fake.botUserId, eventId: "Ev0RETRY0001" });
    const r = await postSlackEvent(url, SECRET, env, { retryNum: 2, retryReason: "http_timeout" });
    expect(r.status).toBe(200);
    for (let i = 0; i < 50 && !seen.some((s) => s.event.ts === env.event.ts); i++) await sleep(20);
    const s = seen.find((x) => x.event.ts === env.event.ts);
    expect(s).toMatchObject({ retryNum: 2, retryReason: "http_timeout" });
  });

  it("a DM arrives as a message event with channel_type im and reaches app.message", async () => {
    const env = messageEnvelope({ text: "hello in private", channel: "D0DIRECT01", channelType: "im" });
    expect(env.event).toMatchObject({ type: "message", channel_type: "im", user: DEFAULT_USER_ID, event_ts: env.event.ts });
    expect((await postSlackEvent(url, SECRET, env)).status).toBe(200);
    const post = await fake.waitFor((c) => c.method === "chat.postMessage" && c.args.channel === "D0DIRECT01");
    expect(post.args).toMatchObject({ thread_ts: env.event.ts, text: "dm: hello in private" });
    expect(seen.find((s) => s.kind === "dm")?.event.text).toBe("hello in private");
  });

  it("Bolt drops the app's own message (ignoreSelf) and the listener skips edits", async () => {
    const n = seen.length;
    const own = messageEnvelope({ text: "mine", channel: "D0DIRECT01", user: fake.botUserId, botId: fake.botId });
    const edit = messageEnvelope({ text: "edited", channel: "D0DIRECT01", subtype: "message_changed" });
    expect(edit.event).toMatchObject({ subtype: "message_changed", hidden: true, message: { text: "edited" } });
    expect((await postSlackEvent(url, SECRET, own)).status).toBe(200);
    expect((await postSlackEvent(url, SECRET, edit)).status).toBe(200);
    await sleep(150);
    expect(seen.length).toBe(n);
  });
});

describe("fake Slack Web API wire format (real WebClient)", () => {
  let fake: FakeSlack;
  const client = (token?: string, extra: Record<string, unknown> = {}) =>
    new webApi.WebClient(token ?? fake.token, {
      slackApiUrl: fake.apiUrl,
      logger: quietLogger(),
      retryConfig: { retries: 0 },
      ...extra,
    });
  beforeAll(async () => {
    fake = await startFakeSlack();
  });
  afterAll(async () => {
    await fake?.close();
  });

  it("auth.test, invalid_auth, not_authed, unknown_method, missing channel", async () => {
    const me = await client().auth.test();
    expect(me).toMatchObject({ ok: true, user_id: fake.botUserId, bot_id: fake.botId, team_id: fake.teamId });
    await expect(client("xoxb-wrong").auth.test()).rejects.toMatchObject({ data: { ok: false, error: "invalid_auth" } });
    const raw = await fetch(`${fake.apiUrl}auth.test`, { method: "POST" });
    expect(await raw.json()).toEqual({ ok: false, error: "not_authed" });
    await expect(client().apiCall("chat.doesNotExist", {})).rejects.toMatchObject({ data: { error: "unknown_method" } });
    await expect(client().chat.postMessage({ text: "x" } as any)).rejects.toMatchObject({ data: { error: "channel_not_found" } });
    await expect(client().chat.postMessage({ channel: "C1" } as any)).rejects.toMatchObject({ data: { error: "no_text" } });
    expect(fake.calls.map((c) => c.method)).toEqual(["auth.test"]);
  });

  it("JSON bodies with a bearer token work; ts are unique and increasing", async () => {
    const post = (text: string) =>
      fetch(`${fake.apiUrl}chat.postMessage`, {
        method: "POST",
        headers: { authorization: `Bearer ${fake.token}`, "content-type": "application/json; charset=utf-8" },
        body: JSON.stringify({ channel: "C0JSON0001", text, blocks: [{ type: "section", text: { type: "mrkdwn", text } }] }),
      }).then((r) => r.json() as Promise<any>);
    const results = await Promise.all([post("a"), post("b"), post("c")]);
    for (const r of results) expect(r).toMatchObject({ ok: true, channel: "C0JSON0001", message: { bot_id: fake.botId } });
    const ts = results.map((r) => r.ts as string);
    expect(new Set(ts).size).toBe(3);
    expect([...ts].sort()).toEqual([...ts].sort((a, b) => Number(a) - Number(b)));
    expect(fake.messages.get(`C0JSON0001:${ts[0]}`)?.blocks?.[0].type).toBe("section");
  });

  it("chat.update counts edits; reactions follow Slack's already_reacted / no_reaction", async () => {
    const c = client();
    const { ts, channel } = await c.chat.postMessage({ channel: "C0UPD00001", text: "working…", blocks: [{ type: "section", text: { type: "mrkdwn", text: "working…" } }] });
    await c.chat.update({ channel: channel!, ts: ts!, text: "done" });
    const m = fake.messages.get(`${channel}:${ts}`)!;
    expect(m).toMatchObject({ text: "done", edits: 1 });
    expect(m.blocks).toHaveLength(1); // omitted blocks are kept, like Slack
    await expect(c.chat.update({ channel: channel!, ts: "1.000001", text: "x" })).rejects.toMatchObject({ data: { error: "message_not_found" } });
    await c.reactions.add({ channel: channel!, timestamp: ts!, name: "eyes" });
    await expect(c.reactions.add({ channel: channel!, timestamp: ts!, name: "eyes" })).rejects.toMatchObject({ data: { error: "already_reacted" } });
    await c.reactions.remove({ channel: channel!, timestamp: ts!, name: "eyes" });
    await expect(c.reactions.remove({ channel: channel!, timestamp: ts!, name: "eyes" })).rejects.toMatchObject({ data: { error: "no_reaction" } });
    expect(fake.reactions.map((r) => r.op)).toEqual(["add", "remove"]);
    const tooLong = [{ type: "section", text: { type: "mrkdwn", text: "x".repeat(3001) } }];
    await expect(c.chat.postMessage({ channel: "C0UPD00001", text: "t", blocks: tooLong })).rejects.toMatchObject({ data: { error: "invalid_blocks" } });
  });

  it("threads: conversations.replies, getPermalink, postEphemeral, setStatus, users.info, chat streaming", async () => {
    const c = client();
    const parent = fake.seedMessage({ channel: "C0THR00001", text: "<@U0DECKBOT1> do it" });
    const r1 = await c.chat.postMessage({ channel: "C0THR00001", thread_ts: parent, text: "one" });
    await c.assistant.threads.setStatus({ channel_id: "C0THR00001", thread_ts: parent, status: "is thinking…" });
    expect(fake.statuses).toEqual([{ channel_id: "C0THR00001", thread_ts: parent, status: "is thinking…" }]);
    const stream = c.chatStream({ channel: "C0THR00001", thread_ts: parent, buffer_size: 1 });
    await stream.append({ markdown_text: "Hello " });
    await stream.append({ markdown_text: "world" });
    await stream.stop();
    const replies = await c.conversations.replies({ channel: "C0THR00001", ts: parent });
    expect(replies.messages!.map((m) => m.text)).toEqual(["<@U0DECKBOT1> do it", "one", "Hello world"]);
    expect(replies.messages![0]).toMatchObject({ reply_count: 2, thread_ts: parent });
    expect(fake.threadMessages("C0THR00001", parent).map((m) => m.text)).toEqual(["<@U0DECKBOT1> do it", "one", "Hello world"]);
    const link = await c.chat.getPermalink({ channel: "C0THR00001", message_ts: r1.ts! });
    expect(link.permalink).toBe(
      `https://deckhand-test.slack.com/archives/C0THR00001/p${r1.ts!.replace(".", "")}?thread_ts=${parent}&cid=C0THR00001`,
    );
    const eph = await c.chat.postEphemeral({ channel: "C0THR00001", user: DEFAULT_USER_ID, text: "only you" });
    expect(eph.message_ts).toMatch(/^\d+\.\d{6}$/);
    const u = await c.users.info({ user: DEFAULT_USER_ID });
    expect(u.user).toMatchObject({ id: DEFAULT_USER_ID, is_bot: false, profile: { display_name: expect.any(String) } });
    await expect(c.users.info({ user: "nobody" })).rejects.toMatchObject({ data: { error: "user_not_found" } });
  });

  it("views.open exchanges a fresh trigger_id once for a modal; bad, expired and reused triggers and bad views are refused", async () => {
    const c = client();
    const modal = {
      type: "modal" as const,
      callback_id: "cb",
      title: { type: "plain_text" as const, text: "Follow-up" },
      submit: { type: "plain_text" as const, text: "Send" },
      private_metadata: '{"run":"r1"}',
      blocks: [{ type: "input", block_id: "b", label: { type: "plain_text" as const, text: "What next?" }, element: { type: "plain_text_input", action_id: "a", multiline: true, max_length: 3000 } }],
    };
    const trigger = triggerId();
    const opened = await c.views.open({ trigger_id: trigger, view: modal as any });
    expect(opened).toMatchObject({ ok: true, view: { id: expect.stringMatching(/^V[A-Z0-9]+$/), type: "modal", callback_id: "cb", private_metadata: '{"run":"r1"}', state: { values: {} }, bot_id: fake.botId } });
    expect(fake.views).toEqual([{ trigger_id: trigger, view: opened.view }]);
    await expect(c.views.open({ trigger_id: trigger, view: modal as any })).rejects.toMatchObject({ data: { ok: false, error: "exchanged_trigger_id" } });
    await expect(c.views.open({ trigger_id: "not-a-trigger", view: modal as any })).rejects.toMatchObject({ data: { error: "invalid_trigger_id" } });
    await expect(c.views.open({ trigger_id: triggerId(Date.now() - 60_000), view: modal as any })).rejects.toMatchObject({ data: { error: "expired_trigger_id" } });
    await expect(c.views.open({ view: modal } as any)).rejects.toMatchObject({ data: { error: "invalid_arguments" } });
    await expect(c.views.open({ trigger_id: triggerId(), view: { ...modal, title: { type: "plain_text", text: "A title longer than 24 chars" } } as any })).rejects.toMatchObject({ data: { error: "invalid_arguments" } });
    await expect(c.views.open({ trigger_id: triggerId(), view: { ...modal, submit: undefined } as any })).rejects.toMatchObject({ data: { error: "invalid_arguments" } });
    expect(fake.views).toHaveLength(1);
  });

  it("failNext: ok:false, 500 (retried by the client) and '*' rules", async () => {
    fake.failNext("chat.update", 1, { okFalse: "ratelimited" });
    const c = client();
    const { ts } = await c.chat.postMessage({ channel: "C0FAIL0001", text: "x" });
    await expect(c.chat.update({ channel: "C0FAIL0001", ts: ts!, text: "y" })).rejects.toMatchObject({ data: { error: "ratelimited" } });
    await c.chat.update({ channel: "C0FAIL0001", ts: ts!, text: "y" });
    fake.failNext("*", 1, { status: 500 });
    const retrying = client(undefined, { retryConfig: { retries: 2, minTimeout: 10, maxTimeout: 10 } });
    await retrying.chat.postMessage({ channel: "C0FAIL0001", text: "after 500" });
    expect(fake.requests.slice(-2).map((r) => r.status)).toEqual([500, 200]);
    fake.failNext("chat.postMessage", 1, { status: 429, retryAfterSec: 7 });
    const rejecting = client(undefined, { rejectRateLimitedCalls: true });
    await expect(rejecting.chat.postMessage({ channel: "C0FAIL0001", text: "z" })).rejects.toMatchObject({
      code: "slack_webapi_rate_limited_error",
      retryAfter: 7,
    });
  });
});

describe("fake Slack: an answer lost on the way back", () => {
  it("lostAnswer carries the call out and drops the connection", async () => {
    const fake = await startFakeSlack();
    try {
      const c = new webApi.WebClient(fake.token, { slackApiUrl: fake.apiUrl, logger: quietLogger(), retryConfig: { retries: 0 } });
      fake.failNext("chat.postMessage", 1, { lostAnswer: true });
      await expect(c.chat.postMessage({ channel: "C0LOST0001", text: "did it land?" })).rejects.toMatchObject({ code: "slack_webapi_request_error" });
      expect([...fake.messages.values()].map((m) => m.text)).toEqual(["did it land?"]);
      expect(fake.requests.at(-1)).toMatchObject({ method: "chat.postMessage", status: 200, injected: true });
      await c.chat.postMessage({ channel: "C0LOST0001", text: "next" }); // the rule is used up
      expect(fake.messages.size).toBe(2);
    } finally {
      await fake.close();
    }
  });
});

describe("mounting Bolt inside our own Node http server (no receiver.start / app.start)", () => {
  let fake: FakeSlack;
  let server: http.Server;
  let base: string;
  const seen: Seen[] = [];

  beforeAll(async () => {
    fake = await startFakeSlack();
    // The constructor does not listen; only start() would. App calls receiver.init(app) itself.
    const receiver = new HTTPReceiver({ signingSecret: SECRET, logLevel: LogLevel.ERROR });
    boltApp(fake, seen, { receiver, signingSecret: undefined });
    server = http.createServer((req, res) => {
      const path = new URL(req.url ?? "/", "http://x").pathname;
      if (path === "/slack/events") {
        try {
          receiver.requestListener(req, res); // async inside; throws only for paths/methods it does not handle
        } catch {
          res.writeHead(404).end();
        }
        return;
      }
      if (path === "/prebuffered/slack/events" && req.method === "POST") {
        // A framework that already consumed the body: hand Bolt the raw bytes as req.rawBody.
        const chunks: Buffer[] = [];
        req.on("data", (c) => chunks.push(c));
        req.on("end", () => {
          (req as any).rawBody = Buffer.concat(chunks);
          req.url = "/slack/events";
          receiver.requestListener(req, res);
        });
        return;
      }
      res.writeHead(200, { "content-type": "text/plain" }).end("ours");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
    await fake?.close();
  });

  it("routes POST /slack/events to Bolt and everything else to us", async () => {
    expect(await (await fetch(`${base}/healthz`)).text()).toBe("ours");
    const env = mentionEnvelope({ text: "mounted", channel: "C0MOUNT001", botUserId: fake.botUserId });
    expect((await postSlackEvent(`${base}/slack/events`, SECRET, env)).status).toBe(200);
    await fake.waitFor((c) => c.method === "chat.postMessage" && c.args.thread_ts === env.event.ts);
    expect((await postSlackEvent(`${base}/slack/events`, SECRET, env, { badSignature: true })).status).toBe(401);
    expect((await fetch(`${base}/slack/events`)).status).toBe(404); // GET: requestListener throws HTTPReceiverDeferredRequestError
  });

  it("works when the body was already read (req.rawBody)", async () => {
    const env = mentionEnvelope({ text: "buffered", channel: "C0MOUNT001", botUserId: fake.botUserId });
    expect((await postSlackEvent(`${base}/prebuffered/slack/events`, SECRET, env)).status).toBe(200);
    await fake.waitFor((c) => c.method === "chat.postMessage" && c.args.thread_ts === env.event.ts);
    const bad = await postSlackEvent(`${base}/prebuffered/slack/events`, SECRET, env, { badSignature: true });
    expect(bad.status).toBe(401);
  });

  it("works under Fastify too (buffer parser + reply.hijack())", async () => {
    const receiver = new HTTPReceiver({ signingSecret: SECRET, logLevel: LogLevel.ERROR });
    boltApp(fake, seen, { receiver, signingSecret: undefined });
    const f = Fastify();
    await f.register(async (scope) => {
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser("*", { parseAs: "buffer" }, (_req, body, done) => done(null, body));
      scope.post("/slack/events", (request, reply) => {
        reply.hijack();
        (request.raw as any).rawBody = request.body;
        receiver.requestListener(request.raw, reply.raw);
      });
    });
    f.get("/healthz", async () => "ok");
    const addr = await f.listen({ port: 0, host: "127.0.0.1" });
    try {
      const env = mentionEnvelope({ text: "via fastify", channel: "C0FASTIFY1", botUserId: fake.botUserId });
      expect((await postSlackEvent(`${addr}/slack/events`, SECRET, env)).status).toBe(200);
      await fake.waitFor((c) => c.method === "chat.postMessage" && c.args.thread_ts === env.event.ts);
      expect((await postSlackEvent(`${addr}/slack/events`, SECRET, env, { badSignature: true })).status).toBe(401);
      expect((await postSlackEvent(`${addr}/slack/events`, SECRET, urlVerification("c1"))).body).toBe('{"challenge":"c1"}');
      expect(await (await fetch(`${addr}/healthz`)).text()).toBe("ok");
    } finally {
      await f.close();
    }
  });

  it("signSlackRequest matches Bolt's verifier", async () => {
    const { verifySlackRequest } = await import("@slack/bolt");
    const body = JSON.stringify(mentionEnvelope({ text: "x", botUserId: fake.botUserId }));
    const h = signSlackRequest(SECRET, body);
    expect(() =>
      verifySlackRequest({
        signingSecret: SECRET,
        body,
        headers: { "x-slack-signature": h["x-slack-signature"], "x-slack-request-timestamp": Number(h["x-slack-request-timestamp"]) },
      }),
    ).not.toThrow();
  });
});
