/**
 * Slack interactivity with the real Bolt receiver and signed payloads (no sandboxes: runs stay queued): the Stop
 * and Follow-up buttons on a status message (Follow-up's modal and its submission), `/deckhand run|status|stop|help`, the "Send to Deckhand" message shortcut, App Home,
 * and the allowlist on every one of them.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mountSlack } from "../../src/integrations/slack/index.ts";
import { appHomeOpenedEnvelope, blockActionsPayload, type FakeSlack, mentionEnvelope, messageEnvelope, messageShortcutPayload, postSlackAction, postSlackEvent, postSlashCommand, signSlackRequest, slackBotEnv, triggerId, startFakeSlack, viewSubmissionPayload } from "../fakes/slack.ts";
import { makeRepo, startTestServer, type TestServer } from "../helpers/harness.ts";
import { until } from "../helpers/until.ts";
import { forceRunRow } from "../helpers/force-run-row.ts";
import { hashToken } from "../../src/runs/tokens.ts";

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

  it("Follow-up on the status message opens a form for that run; the text sent reaches the run as its next input and the thread says who asked; empty, too long, strangers and replays elsewhere reach nothing", async () => {
    const env = mentionEnvelope({ text: "add a follow-up test", channel: CHANNEL, user: ADA, botUserId: fake.botUserId });
    fake.seedMessage({ channel: CHANNEL, text: env.event.text, ts: env.event.ts, user: ADA });
    expect((await postSlackEvent(url, SECRET, env)).status).toBe(200);
    const run = await until("a run", async () => (await runsOf(ADA)).find((r) => r.prompt === "add a follow-up test"));
    const root = env.event.ts;
    const status = await until("the status message", () => fake.threadMessages(CHANNEL, root).find((m) => m.blocks?.some((b: any) => b.type === "actions")));
    const buttons = status.blocks!.find((b: any) => b.type === "actions").elements;
    expect(buttons.map((b: any) => [b.action_id, b.text.text, b.value])).toEqual([
      ["deckhand_stop", "Stop", run.id],
      ["deckhand_followup", "Follow-up", run.id],
    ]);
    const click = (user: string, channel = CHANNEL) =>
      postSlackAction(url, SECRET, blockActionsPayload({ user, channel, message: { ts: status.ts, thread_ts: root, blocks: status.blocks }, button: { action_id: "deckhand_followup", value: run.id, text: "Follow-up" } }));
    const formsFor = (id: string) => fake.views.filter((v) => v.view.private_metadata.includes(id));

    // A stranger's click, and the button replayed in another channel: told privately, no form.
    const told = fake.ephemerals.length;
    expect((await click(STRANGER)).status).toBe(200);
    expect((await click(ADA, "C0ELSEWHERE")).status).toBe(200);
    await until("both told", () => fake.ephemerals.length >= told + 2);
    expect(fake.ephemerals.slice(told).map((e) => [e.user, e.channel, /not on the list|does not belong/.test(e.text)])).toEqual(expect.arrayContaining([[STRANGER, CHANNEL, true], [ADA, "C0ELSEWHERE", true]]));
    expect(formsFor(run.id)).toHaveLength(0);

    // Ada's click opens the form (views.open with the click's trigger), naming the run and its conversation.
    expect((await click(ADA)).status).toBe(200);
    const form = (await until("the form", () => formsFor(run.id)[0])).view;
    expect(JSON.parse(form.private_metadata)).toEqual({ run: run.id, channel: CHANNEL, thread: root });
    expect(form).toMatchObject({ callback_id: "deckhand_followup", title: { text: "Follow-up" } });
    expect(form.blocks.find((b: any) => b.type === "input")).toMatchObject({ block_id: "followup_text", label: { text: "What should the agent do next?" }, element: { type: "plain_text_input", multiline: true } });

    const submit = async (text: string, o: { user?: string; privateMetadata?: string } = {}) => {
      const res = await postSlackAction(url, SECRET, viewSubmissionPayload({ view: form, user: o.user ?? ADA, values: { followup_text: { text } }, privateMetadata: o.privateMetadata }));
      expect(res.status).toBe(200);
      return res.body ? JSON.parse(res.body) : null;
    };
    const errorOf = async (text: string, o: { user?: string; privateMetadata?: string } = {}) => {
      const answer = await submit(text, o);
      expect(answer.response_action).toBe("errors");
      return answer.errors.followup_text as string;
    };
    expect(await errorOf("   \n ")).toMatch(/Write what the agent should do next/);
    expect(await errorOf("x".repeat(3001))).toMatch(/limit is 3000/);
    expect(await errorOf("from a stranger", { user: STRANGER })).toMatch(/not on the list/);
    // The form's metadata replayed for another channel's run, or for this run from another channel: refused.
    const other = await srv.deckhand.service.start({ repo: "demo", prompt: "another channel's task", source: "slack", sourceRef: { channel: "C0OTHER001", threadTs: "1700000000.000200", messageTs: "1700000000.000200", user: ADA } });
    expect(await errorOf("hijack", { privateMetadata: JSON.stringify({ run: other.id, channel: CHANNEL, thread: root }) })).toMatch(/does not belong/);
    expect(await errorOf("hijack", { privateMetadata: JSON.stringify({ run: run.id, channel: "C0OTHER001", thread: "1700000000.000200" }) })).toMatch(/does not belong/);
    expect(await errorOf("hijack", { privateMetadata: '{"__proto__":{"run":"x"}}' })).toMatch(/not one of Deckhand's/);

    // Sent: the form closes, the run gets the text as its next input (with who asked), and the thread shows it.
    expect(await submit("also cover <!channel> edge cases")).toEqual({ response_action: "clear" });
    const inputs = await until("the follow-up", async () => {
      const i = await srv.deckhand.store.inputs(run.id);
      return i.length > 1 ? i : null;
    });
    expect(inputs.map((i) => [i.kind, i.text, i.source])).toEqual([
      ["prompt", "add a follow-up test", "slack"],
      ["prompt", "also cover <!channel> edge cases", "slack"],
    ]);
    expect(inputs[1]!.author).toBe("user-u0ada00001");
    const echo = await until("the thread line", () => fake.threadMessages(CHANNEL, root).find((m) => /Follow-up from/.test(m.text)));
    expect(echo.text).toBe(":inbox_tray: Follow-up from *user-u0ada00001*: also cover &lt;!channel&gt; edge cases");
    // The same submission replayed adds nothing; nothing reached the other run either.
    expect(await submit("also cover <!channel> edge cases")).toEqual({ response_action: "clear" });
    await sleep(500);
    expect(await srv.deckhand.store.inputs(run.id)).toHaveLength(2);
    expect(await srv.deckhand.store.inputs(other.id)).toHaveLength(1);

    // Once the run is over: no Follow-up button; the old button and a late form say so and reach nothing.
    await srv.deckhand.service.stop(run.id, { author: "test", source: "test" });
    await until("the status message without buttons", () => !fake.messages.get(`${CHANNEL}:${status.ts}`)!.blocks?.some((b: any) => b.type === "actions"));
    const before = fake.ephemerals.length;
    expect((await click(ADA)).status).toBe(200);
    await until("told it is over", () => fake.ephemerals.slice(before).find((e) => e.user === ADA && /already cancelled/.test(e.text)));
    expect(formsFor(run.id)).toHaveLength(1);
    const late = await postSlackAction(url, SECRET, viewSubmissionPayload({ view: { ...form, id: "V0LATEFORM1" }, user: ADA, values: { followup_text: { text: "too late" } } }));
    expect(JSON.parse(late.body).errors.followup_text).toMatch(/already cancelled/);
    expect(await srv.deckhand.store.inputs(run.id)).toHaveLength(3); // the two prompts and the stop
    await srv.deckhand.service.stop(other.id, { author: "test", source: "test" });
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
    // A command without a `text` field at all (Slack always sends one; a hostile client need not): the help, no crash.
    const bare = new URLSearchParams({ team_id: "T0DECK0001", channel_id: CHANNEL, channel_name: "project", user_id: ADA, user_name: "ada", command: "/deckhand", trigger_id: triggerId() }).toString();
    const bareRes = await fetch(url, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded", ...signSlackRequest(SECRET, bare) }, body: bare });
    expect(bareRes.status).toBe(200);
    expect(JSON.parse(await bareRes.text()).text).toContain("/deckhand run");
    // The same signed request twice (replayed within Slack's five minutes): one request posted, one run.
    const body = new URLSearchParams({ team_id: "T0DECK0001", channel_id: CHANNEL, channel_name: "project", user_id: ADA, user_name: "ada", command: "/deckhand", text: "run replayed task", trigger_id: triggerId() }).toString();
    const headers = { "content-type": "application/x-www-form-urlencoded", ...signSlackRequest(SECRET, body) };
    for (let i = 0; i < 2; i++) expect((await fetch(url, { method: "POST", headers, body })).status).toBe(200);
    await until("the replayed task's run", async () => (await runsOf(ADA)).find((r) => r.prompt === "replayed task"));
    await sleep(300);
    expect([...fake.messages.values()].filter((m: any) => /asked me: replayed task/.test(m.text))).toHaveLength(1);
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

    // The same picker clicked again once the run exists (or after it ended): it answered its question already, so
    // the repo's name never reaches the run as a follow-up, and no second run starts.
    let clicks = 0;
    const again = () => {
      const p = blockActionsPayload({ user: ADA, channel: "C0NOREPO01", message: { ts: ask.ts, thread_ts: env.event.ts, blocks: ask.blocks }, button: { action_id: button.action_id, value: button.value, text: "demo" } });
      p.actions[0].action_ts = `${Math.floor(Date.now() / 1000)}.${String(900_000 + ++clicks)}`; // a click of its own
      return postSlackAction(url, SECRET, p);
    };
    expect((await again()).status).toBe(200);
    await srv.deckhand.service.stop(run.id, { author: "test", source: "api" });
    expect((await again()).status).toBe(200);
    // A mention in the same thread still works after the stale clicks (the queue has handled them by then).
    const later = messageEnvelope({ text: "status", channel: "C0NOREPO01", user: ADA, thread_ts: env.event.ts });
    expect((await postSlackEvent(url, SECRET, later)).status).toBe(200);
    await until("status answered", () => fake.threadMessages("C0NOREPO01", env.event.ts).find((m) => m.user === fake.botUserId && /cancelled|Cancelled/.test(m.text)));
    expect((await srv.deckhand.store.inputs(run.id)).filter((i) => i.kind === "prompt").map((i) => i.text)).not.toContain("demo");
    expect((await runsOf(ADA)).filter((r) => r.sourceRef && (r.sourceRef as any).threadTs === env.event.ts)).toHaveLength(1);
  });

  it("the agent's question: a reply that is none of its options is told so in the thread, the agent's words escaped (no @channel)", async () => {
    const env = mentionEnvelope({ text: "repo=demo pick a cache", channel: CHANNEL, user: ADA, botUserId: fake.botUserId });
    expect((await postSlackEvent(url, SECRET, env)).status).toBe(200);
    const run = await until("a run", async () => (await runsOf(ADA)).find((r) => r.prompt === "pick a cache"));
    // Its sandbox (played over the relay's own endpoint) asks, with options the agent wrote to ping everyone.
    const token = "relay-token-slack-question-0123456789";
    await forceRunRow(srv.deckhand.store.db, run.id, { status: "running", relayTokenHash: hashToken(token) });
    const events = [{ seq: 1, type: "question.asked", at: new Date().toISOString(), data: { id: "que_ping", questions: [{ question: "Which cache, <!here>?", options: [{ label: "<!channel>" }, { label: "<https://evil.example|lru>" }], custom: false }] } }];
    const pushed = await fetch(`${srv.url}/relay/v1/runs/${run.id}/events`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify({ events }) });
    expect(pushed.status).toBeLessThan(300);
    const reply = messageEnvelope({ text: "neither", channel: CHANNEL, user: ADA, thread_ts: env.event.ts });
    expect((await postSlackEvent(url, SECRET, reply)).status).toBe(200);
    const told = await until("told", () => fake.threadMessages(CHANNEL, env.event.ts).find((m) => m.user === fake.botUserId && /didn't answer/.test(m.text)));
    expect(told.text).toContain("&lt;!channel&gt;");
    // The question's own message (and its edit once answered) carries the agent's words escaped, fallback text too.
    const asked = await until("the question's message", () => fake.threadMessages(CHANNEL, env.event.ts).find((m) => m.user === fake.botUserId && /agent asks/i.test(m.text)));
    expect(asked.text).toBe("The agent asks: Which cache, &lt;!here&gt;?");
    const settled = [{ seq: 2, type: "question.replied", at: new Date().toISOString(), data: { requestID: "que_ping", answers: [["<!channel>"]] } }];
    expect((await fetch(`${srv.url}/relay/v1/runs/${run.id}/events`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify({ events: settled }) })).status).toBeLessThan(300);
    await srv.deckhand.outbox.planRun(run.id);
    await until("the question's message edited", () => /Answered/.test(fake.messages.get(`${CHANNEL}:${asked.ts}`)!.text));
    for (const m of fake.threadMessages(CHANNEL, env.event.ts).filter((x) => x.user === fake.botUserId)) expect(JSON.stringify([m.text, m.blocks])).not.toMatch(/<!channel>|<!here>|<https:/);
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
