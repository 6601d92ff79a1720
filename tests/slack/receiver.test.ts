/**
 * Our Bolt receiver on Fastify (src/integrations/slack/receiver.ts) with a real Bolt App and real signed HTTP
 * requests, the way Slack sends them: events (and Slack's retries), block_actions, slash commands and
 * view_submission answered through ack(), url_verification, and every refusal (forged signature, old timestamp,
 * huge body, busy, no ack in time).
 */
import { App } from "@slack/bolt";
import Fastify, { type FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FastifyReceiver } from "../../src/integrations/slack/receiver.ts";
import { createLogger } from "../../src/log/logger.ts";
import { blockActionsPayload, DEFAULT_BOT_ID, DEFAULT_BOT_USER_ID, DEFAULT_TOKEN, mentionEnvelope, postSlackAction, postSlackEvent, postSlashCommand, signSlackRequest, urlVerification } from "../fakes/slack.ts";

const SECRET = "slack-signing-secret-receiver-0003";
const LIMIT = 64 * 1024;

describe("the Bolt receiver on Fastify", () => {
  let server: FastifyInstance;
  let url: string;
  let busy = false;
  const seen: { kind: string; value: unknown; retryNum?: number; retryReason?: string }[] = [];

  beforeAll(async () => {
    const log = createLogger({ level: "silent" });
    const receiver = new FastifyReceiver({ signingSecret: SECRET, bodyLimit: LIMIT, log, busy: () => busy, ackTimeoutMs: 500 });
    const app = new App({ token: DEFAULT_TOKEN, receiver, botId: DEFAULT_BOT_ID, botUserId: DEFAULT_BOT_USER_ID, tokenVerificationEnabled: false });
    app.event("app_mention", async ({ event, context }) => {
      seen.push({ kind: "mention", value: (event as { text?: string }).text, retryNum: context.retryNum, retryReason: context.retryReason });
    });
    app.action("press", async ({ ack, action }) => {
      await ack();
      seen.push({ kind: "action", value: (action as { value?: string }).value });
    });
    // Holds its ack past the receiver's wait (a listener stuck on something slow).
    app.action("slow", async ({ ack }) => {
      await new Promise((r) => setTimeout(r, 1500));
      await ack().catch(() => {});
    });
    app.command("/deckhand", async ({ ack, command }) => {
      await ack({ response_type: "ephemeral", text: `you said: ${command.text}` });
      seen.push({ kind: "command", value: command.text });
    });
    app.view("task_modal", async ({ ack }) => {
      await ack({ response_action: "errors", errors: { task: "Say what to do" } });
    });
    server = Fastify();
    await server.register(receiver.plugin);
    url = `${await server.listen({ port: 0, host: "127.0.0.1" })}/slack/events`;
  });
  afterAll(async () => {
    await server?.close();
  });

  const lastOf = (kind: string) => seen.filter((s) => s.kind === kind).at(-1);

  it("a signed event reaches the listener and is acknowledged with 200; Slack's retry headers reach context", async () => {
    const env = mentionEnvelope({ text: `<@${DEFAULT_BOT_USER_ID}> fix the build`, botUserId: DEFAULT_BOT_USER_ID });
    expect((await postSlackEvent(url, SECRET, env)).status).toBe(200);
    await expect.poll(() => lastOf("mention")).toMatchObject({ value: `<@${DEFAULT_BOT_USER_ID}> fix the build`, retryNum: undefined });
    const retried = await postSlackEvent(url, SECRET, mentionEnvelope({ text: "again", botUserId: DEFAULT_BOT_USER_ID }), { retryNum: 2, retryReason: "http_timeout" });
    expect(retried.status).toBe(200);
    await expect.poll(() => lastOf("mention")).toMatchObject({ value: `<@${DEFAULT_BOT_USER_ID}> again`, retryNum: 2, retryReason: "http_timeout" });
  });

  it("url_verification is answered with its challenge", async () => {
    const res = await postSlackEvent(url, SECRET, urlVerification("challenge-123"));
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ challenge: "challenge-123" });
  });

  it("block_actions (form-encoded payload=), slash commands and view_submission: ack() answers the request, with its body", async () => {
    const press = await postSlackAction(url, SECRET, blockActionsPayload({ channel: "C1", message: { ts: "1.000100" }, button: { action_id: "press", value: "v-42" } }));
    expect(press.status).toBe(200);
    expect(lastOf("action")?.value).toBe("v-42");

    const cmd = await postSlashCommand(url, SECRET, { text: "status please" });
    expect(cmd.status).toBe(200);
    expect(JSON.parse(cmd.body)).toEqual({ response_type: "ephemeral", text: "you said: status please" });

    const view = { type: "view_submission", team: { id: "T1" }, user: { id: "U1", team_id: "T1" }, api_app_id: "A1", view: { id: "V1", type: "modal", callback_id: "task_modal", state: { values: {} } } };
    const submitted = await postSlackAction(url, SECRET, view);
    expect(submitted.status).toBe(200);
    expect(JSON.parse(submitted.body)).toEqual({ response_action: "errors", errors: { task: "Say what to do" } });
  });

  it("refuses a forged signature, an old timestamp, a huge body and a body that is not an object; nothing reaches Bolt", async () => {
    const before = seen.length;
    const env = mentionEnvelope({ text: "forged", botUserId: DEFAULT_BOT_USER_ID });
    const forged = await postSlackEvent(url, SECRET, env, { badSignature: true });
    expect(forged.status).toBe(401);
    expect(JSON.parse(forged.body).error).toMatch(/signature/);
    const old = await postSlackEvent(url, SECRET, env, { timestampSec: Math.floor(Date.now() / 1000) - 600 });
    expect(old.status).toBe(401);
    expect(JSON.parse(old.body).error).toMatch(/timestamp/);
    const unsigned = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(env) });
    expect(unsigned.status).toBe(401);
    const huge = JSON.stringify({ ...env, padding: "x".repeat(LIMIT * 2) });
    const big = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...signSlackRequest(SECRET, huge) }, body: huge });
    expect(big.status).toBe(413);
    const notObject = await postSlackEvent(url, SECRET, "[1,2]");
    expect(notObject.status).toBe(400);
    expect((await fetch(url)).status).toBe(404);
    // Signed, but without what Bolt reads to route them (a form without its view, a payload with neither team nor
    // user, an event whose authorizations are not objects): 400, not Bolt's TypeError as a 500.
    for (const bad of [{ type: "view_submission", user: { id: "U1" } }, { type: "view_closed", view: null, team: { id: "T1" } }, { type: "message_action", callback_id: "x" }, { type: "block_suggestion", team: null, user: "U1" }]) {
      expect((await postSlackAction(url, SECRET, bad)).status, JSON.stringify(bad)).toBe(400);
    }
    expect((await postSlackEvent(url, SECRET, { ...env, authorizations: [null] })).status).toBe(400);
    expect(seen.length).toBe(before);
  });

  it("answers 404 when no listener takes a request, 504 when none acknowledges in time, 503 while busy", async () => {
    const payload = (id: string) => blockActionsPayload({ channel: "C1", message: { ts: "1.000100" }, button: { action_id: id, value: "x" } });
    expect((await postSlackAction(url, SECRET, payload("nobody_listens"))).status).toBe(404);
    const silent = await postSlackAction(url, SECRET, payload("slow"));
    expect(silent.status).toBe(504);
    busy = true;
    try {
      const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...signSlackRequest(SECRET, "{}") }, body: "{}" });
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).toBe("30");
    } finally {
      busy = false;
    }
  });
});
