/**
 * Slack interactivity with the real Bolt receiver and signed payloads (no sandboxes: runs stay queued): the Stop
 * button on a status message, `/deckhand run|status|stop|help`, the "Send to Deckhand" message shortcut, App Home,
 * and the allowlist on every one of them.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mountSlack } from "../../src/integrations/slack/index.ts";
import { appHomeOpenedEnvelope, blockActionsPayload, type FakeSlack, mentionEnvelope, messageEnvelope, messageShortcutPayload, postSlackAction, postSlackEvent, postSlashCommand, slackBotEnv, startFakeSlack } from "../fakes/slack.ts";
import { makeRepo, startTestServer, type TestServer } from "../helpers/harness.ts";
import { until } from "../helpers/until.ts";

const SECRET = "slack-signing-secret-for-tests-0002";
const CHANNEL = "C0PROJECT2";
const ADA = "U0ADA00001";
const STRANGER = "U0STRANGER";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("Slack interactivity", () => {
  let fake: FakeSlack;
  let srv: TestServer;
  let url: string;

  beforeAll(async () => {
    fake = await startFakeSlack();
    srv = await startTestServer({
      database: "pglite",
      noReconciler: true,
      repos: { demo: makeRepo().bare },
      env: { ...slackBotEnv(fake, SECRET), SLACK_CHANNEL_REPOS: `${CHANNEL}=demo`, SLACK_ALLOWED_USERS: ADA },
      mount: (d) => mountSlack(d, { refreshMs: 60_000, minIntervalMs: 50 }),
    });
    url = `${srv.url}/slack/events`;
  });
  afterAll(async () => {
    await srv?.close();
    await fake?.close();
  });

  const runsOf = async (user: string) => (await srv.deckhand.store.list({ source: "slack", limit: 100 })).filter((r) => (r.sourceRef as any).user === user);
  it("/deckhand run posts the request and starts a run in its thread; its status message's Stop button stops it", async () => {
    const res = await postSlashCommand(url, SECRET, { text: "run add a changelog entry", channel: CHANNEL, user: ADA });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ response_type: "ephemeral", text: expect.stringContaining("On it") });
    const run = await until("a run", async () => (await runsOf(ADA)).find((r) => r.prompt === "add a changelog entry"));
    // The run lives in the thread of the request the bot posted in the channel.
    const root = [...fake.messages.values()].find((m: any) => m.channel === CHANNEL && /asked me: add a changelog entry/.test(m.text)) as any;
    expect(root, "the request message").toBeTruthy();
    expect((run.sourceRef as any).threadTs).toBe(root.ts);
    const status = await until("the status message", () => fake.threadMessages(CHANNEL, (run.sourceRef as any).threadTs).find((m) => m.blocks?.some((b: any) => b.type === "actions")));
    const stop = status.blocks!.find((b: any) => b.type === "actions").elements[0];
    expect(stop).toMatchObject({ action_id: "deckhand_stop", value: run.id, style: "danger" });
    const press = (user: string, channel = CHANNEL) =>
      postSlackAction(url, SECRET, blockActionsPayload({ user, channel, message: { ts: status.ts, thread_ts: (run.sourceRef as any).threadTs, blocks: status.blocks }, button: { action_id: stop.action_id, value: stop.value, text: "Stop" } }));

    // Someone not allowed, and the same button replayed in another channel: nothing stops.
    expect((await press(STRANGER)).status).toBe(200);
    await until("the stranger told", () => fake.ephemerals.find((e) => e.user === STRANGER && /not on the list/.test(e.text)));
    expect((await press(ADA, "C0ELSEWHERE")).status).toBe(200);
    await until("the replay refused", () => fake.ephemerals.find((e) => e.channel === "C0ELSEWHERE" && /does not belong/.test(e.text)));
    expect((await srv.deckhand.store.get(run.id))!.status).toBe("queued");

    expect((await press(ADA)).status).toBe(200);
    await until("cancelled", async () => (await srv.deckhand.store.get(run.id))!.status === "cancelled");
    // The status message is edited to the end state, without the button.
    await until("the status message without Stop", () => !fake.messages.get(`${CHANNEL}:${status.ts}`)!.blocks?.some((b: any) => b.type === "actions"));
  });

  it("/deckhand status and stop answer privately with the person's own runs; help and refusals too", async () => {
    const run = await srv.deckhand.service.start({ repo: "demo", prompt: "a queued task", source: "slack", sourceRef: { channel: CHANNEL, threadTs: "1700000000.000100", messageTs: "1700000000.000100", user: ADA } });
    const status = JSON.parse((await postSlashCommand(url, SECRET, { text: "status", channel: CHANNEL, user: ADA })).body);
    expect(status.response_type).toBe("ephemeral");
    expect(status.text).toContain("a queued task");
    expect(status.text).toContain(srv.deckhand.service.runPageUrl(run));
    const stranger = JSON.parse((await postSlashCommand(url, SECRET, { text: "stop", channel: CHANNEL, user: STRANGER })).body);
    expect(stranger.text).toMatch(/not on the list/);
    const stopped = JSON.parse((await postSlashCommand(url, SECRET, { text: `stop ${run.id}`, channel: CHANNEL, user: ADA })).body);
    expect(stopped.text).toContain(`Stopped`);
    expect((await srv.deckhand.store.get(run.id))!.status).toBe("cancelled");
    expect(JSON.parse((await postSlashCommand(url, SECRET, { text: "stop", channel: CHANNEL, user: ADA })).body).text).toBe("You have no runs in progress.");
    expect(JSON.parse((await postSlashCommand(url, SECRET, { text: "", channel: CHANNEL, user: ADA })).body).text).toContain("/deckhand run");
    // Unsigned: refused before anything happens.
    const forged = await fetch(url, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "command=%2Fdeckhand&text=run+x&user_id=U0ADA00001" });
    expect(forged.status).toBe(401);
  });

  it("'Send to Deckhand' on a message makes it the task of a run in that message's thread", async () => {
    const ts = fake.seedMessage({ channel: CHANNEL, text: "The login page 500s when the email has a plus sign", user: "U0REPORTER" });
    const payload = messageShortcutPayload({ callbackId: "send_to_deckhand", channel: CHANNEL, user: ADA, message: { ts, text: "The login page 500s when the email has a plus sign", user: "U0REPORTER" } });
    expect((await postSlackAction(url, SECRET, payload)).status).toBe(200);
    const run = await until("a run", async () => (await runsOf(ADA)).find((r) => /plus sign/.test(r.prompt)));
    expect(run.sourceRef).toMatchObject({ channel: CHANNEL, threadTs: ts, messageTs: ts });
    // Replayed (Slack retries): still one run.
    expect((await postSlackAction(url, SECRET, payload)).status).toBe(200);
    await sleep(500);
    expect((await runsOf(ADA)).filter((r) => /plus sign/.test(r.prompt))).toHaveLength(1);
    // From someone not allowed: told, no run.
    const other = fake.seedMessage({ channel: CHANNEL, text: "Please also fix the footer", user: "U0REPORTER" });
    await postSlackAction(url, SECRET, messageShortcutPayload({ callbackId: "send_to_deckhand", channel: CHANNEL, user: STRANGER, message: { ts: other, text: "Please also fix the footer" } }));
    await until("refusal in the thread", () => fake.threadMessages(CHANNEL, other).find((m) => /not on the list/.test(m.text)));
    expect((await srv.deckhand.store.list({ source: "slack", limit: 100 })).some((r) => /footer/.test(r.prompt))).toBe(false);
  });

  it("'which repo?' comes with a button per repo; a click starts the run with the thread's task there", async () => {
    const env = mentionEnvelope({ text: "tidy up the README", channel: "C0NOREPO01", user: ADA, botUserId: fake.botUserId });
    fake.seedMessage({ channel: "C0NOREPO01", text: env.event.text, ts: env.event.ts, user: ADA });
    expect((await postSlackEvent(url, SECRET, env)).status).toBe(200);
    const ask = await until("the question", () => fake.threadMessages("C0NOREPO01", env.event.ts).find((m) => m.user === fake.botUserId && /Which repo/.test(m.text)));
    const button = ask.blocks!.find((b: any) => b.type === "actions").elements.find((e: any) => e.value === "demo");
    expect(button).toBeTruthy();
    expect((await postSlackAction(url, SECRET, blockActionsPayload({ user: ADA, channel: "C0NOREPO01", message: { ts: ask.ts, thread_ts: env.event.ts, blocks: ask.blocks }, button: { action_id: button.action_id, value: button.value, text: "demo" } }))).status).toBe(200);
    const run = await until("a run", async () => (await runsOf(ADA)).find((r) => /tidy up the README/.test(r.prompt)));
    expect(run).toMatchObject({ repo: "demo", sourceRef: { channel: "C0NOREPO01", threadTs: env.event.ts } });
  });

  it("a group DM: a mention starts a run there, and a reply in its thread steers it", async () => {
    const MPIM = "G0GROUPDM1";
    const env = mentionEnvelope({ text: "repo=demo fix the flaky test", channel: MPIM, user: ADA, botUserId: fake.botUserId });
    fake.seedMessage({ channel: MPIM, text: env.event.text, ts: env.event.ts, user: ADA });
    expect((await postSlackEvent(url, SECRET, env)).status).toBe(200);
    const run = await until("a run", async () => (await runsOf(ADA)).find((r) => /flaky test/.test(r.prompt)));
    const reply = messageEnvelope({ text: "only the unit tests", channel: MPIM, channelType: "mpim", user: ADA, thread_ts: env.event.ts });
    expect((await postSlackEvent(url, SECRET, reply)).status).toBe(200);
    const inputs = await until("the steer", async () => {
      const i = await srv.deckhand.store.inputs(run.id);
      return i.length > 1 ? i : null;
    });
    expect(inputs.map((i) => [i.kind, i.text])).toEqual([
      ["prompt", "fix the flaky test"],
      ["prompt", "only the unit tests"],
    ]);
  });

  it("App Home lists the person's recent runs with their state and links", async () => {
    expect((await postSlackEvent(url, SECRET, appHomeOpenedEnvelope({ user: ADA }))).status).toBe(200);
    const call = await until("views.publish", () => fake.calls.find((c) => c.method === "views.publish" && c.args.user_id === ADA));
    const view = typeof call.args.view === "string" ? JSON.parse(call.args.view) : call.args.view;
    const text = JSON.stringify(view.blocks);
    expect(text).toContain("Your recent runs");
    expect(text).toContain("plus sign");
    expect(text).toContain("cancelled");
    expect(text).not.toContain("footer");
  });
});

describe("the Slack app manifest", () => {
  it("asks Slack for what the code handles: interactivity, the command, the shortcut, App Home and their scopes", async () => {
    const fs = await import("node:fs");
    const m = fs.readFileSync(new URL("../../slack-app-manifest.yaml", import.meta.url), "utf8");
    const { SHORTCUT_ID, COMMAND } = await import("../../src/integrations/slack/interactive.ts");
    expect(m).toMatch(/interactivity:\n\s+#[^\n]*\n\s+is_enabled: true\n\s+request_url: \S+\/slack\/events/);
    expect(m).toContain(`- command: ${COMMAND}`);
    expect(m).toContain(`callback_id: ${SHORTCUT_ID}`);
    expect(m).toMatch(/home_tab_enabled: true/);
    expect(m).toMatch(/- commands\b/);
    expect(m).toMatch(/- app_home_opened\b/);
  });
});
