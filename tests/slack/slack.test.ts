/**
 * Slack end to end: the real Bolt receiver mounted in a real Deckhand server, signed requests in Slack's Events
 * API envelope format, the fake Slack Web API, real runs (real sandboxes, OpenCode and git) with the scripted model.
 */
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { conversations, deliveries, runs } from "../../src/db/schema.ts";
import { mountSlack } from "../../src/integrations/slack/index.ts";
import type { ModelHandler } from "../fakes/model-server.ts";
import { blockActionsPayload, type FakeSlack, mentionEnvelope, messageEnvelope, postSlackAction, postSlackEvent, startFakeSlack, urlVerification, slackBotEnv, viewSubmissionPayload } from "../fakes/slack.ts";
import { freshPostgres, makeRepo, postgresAvailable, signInToWeb, startTestServer, type TestServer } from "../helpers/harness.ts";
import { until } from "../helpers/until.ts";

const database = (await postgresAvailable()) ? "postgres" : "pglite";
const SECRET = "slack-signing-secret-for-tests-0001";
const CHANNEL = "C0PROJECT1"; // SLACK_CHANNEL_REPOS maps it to demo
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A model whose first turn on a prompt containing "HOLD" waits for `release()`; other prompts write a file. */
function scriptedModel() {
  let release!: () => void;
  let gate = new Promise<void>((r) => (release = r));
  let seen!: () => void;
  let seenP = new Promise<void>((r) => (seen = r));
  const handler: ModelHandler = async (req) => {
    const first = req.userTexts[0] ?? "";
    // A continuation in a new run carries the earlier context; the file is named after the new request.
    const last = (req.userTexts.at(-1) ?? "").split("New request: ").at(-1)!;
    // "ASK ...": the agent asks which name (OpenCode's question tool), then writes answer-<what it was told>.txt.
    const lastResult = req.toolResults.at(-1);
    if (req.lastRole === "tool" && lastResult?.name === "question") {
      const told = /"="([^"]*)"/.exec(lastResult.content)?.[1] ?? "none";
      return { toolCalls: [{ name: "write", arguments: { filePath: `answer-${told.replace(/[^a-z]+/gi, "-").toLowerCase()}.txt`, content: `${told}\n` } }] };
    }
    if (req.lastRole === "user" && /^ASK\b/.test(last)) {
      return { toolCalls: [{ name: "question", arguments: { questions: [{ question: "Which name? <!channel>", header: "Name", options: [{ label: "alpha", description: "first" }, { label: "beta", description: "second" }] }] } }] };
    }
    if (req.lastRole === "tool") {
      const wrote = req.toolResults.length;
      if (/^Please plan first/.test(first) && wrote === 1) return { toolCalls: [{ name: "write", arguments: { filePath: "hello.txt", content: "hello\n" } }] };
      return { text: `Finished: ${last}` };
    }
    if (/AUTHFAIL/.test(first)) return { httpStatus: 401, message: "Incorrect API key provided" };
    if (/HOLD/.test(first) && req.userTexts.length === 1) {
      seen();
      await gate;
    }
    if (/^Please plan first/.test(first) && req.userTexts.length === 1) {
      return { toolCalls: [{ name: "todowrite", arguments: { todos: [{ content: "Write hello.txt", status: "in_progress", priority: "high", id: "1" }] } }] };
    }
    const name = `${last.replace(/[^a-z]+/gi, "-").toLowerCase().replace(/^-|-$/g, "").slice(0, 24)}.txt`;
    return { toolCalls: [{ name: "write", arguments: { filePath: name, content: `${last}\n` } }] };
  };
  return {
    handler,
    release: () => release(),
    get seen() {
      return seenP;
    },
    reset() {
      gate = new Promise<void>((r) => (release = r));
      seenP = new Promise<void>((r) => (seen = r));
    },
  };
}

const slackEnv = (fake: FakeSlack) => ({
  ...slackBotEnv(fake, SECRET),
  SLACK_CHANNEL_REPOS: `${CHANNEL}=demo`,
  // A $1.50 budget per run that only `model=pricey` ($1000 per million tokens) reaches: OpenCode's title request
  // (hundreds of tokens) fits, its first turn (thousands: the tool list) does not, so the turn after it is refused.
  MODELS: "m,pricey",
  MODEL_PRICES: "pricey=1000/1000",
  RUN_BUDGET_USD: "1.5",
});

describe(`Slack end to end (${database})`, () => {
  let fake: FakeSlack;
  let srv: TestServer;
  let url: string;
  let repo: ReturnType<typeof makeRepo>;
  const model = scriptedModel();

  beforeAll(async () => {
    fake = await startFakeSlack();
    repo = makeRepo({ "README.md": "# demo\n" });
    let line = "";
    srv = await startTestServer({
      database,
      repos: { demo: repo.bare, other: makeRepo().bare },
      handler: (r) => model.handler(r),
      env: slackEnv(fake),
      mount: async (d) => void (line = await mountSlack(d, { refreshMs: 60_000 })),
    });
    expect(line).toMatch(/^slack: events at .*\/slack\/events/);
    url = `${srv.url}/slack/events`;
  });
  afterAll(async () => {
    model.release();
    await srv?.close();
    await fake?.close();
  });

  /** A mention as Slack delivers it (and stores it: conversations.replies sees the thread's first message). */
  const mention = (channel: string, text: string, o: { thread_ts?: string; eventId?: string } = {}) => {
    const env = mentionEnvelope({ text, channel, botUserId: fake.botUserId, ...o });
    fake.seedMessage({ channel, text: env.event.text, ts: env.event.ts, ...(o.thread_ts ? { thread_ts: o.thread_ts } : {}) });
    return env;
  };
  const message = (channel: string, text: string, o: { thread_ts?: string; eventId?: string; ts?: string } = {}) => {
    const env = messageEnvelope({ text, channel, ...o });
    fake.seedMessage({ channel, text, ts: env.event.ts, ...(o.thread_ts ? { thread_ts: o.thread_ts } : {}) });
    return env;
  };

  /** The run started from a Slack message. */
  const runFor = async (channel: string, ts: string) => {
    const list = await srv.deckhand.store.list({ source: "slack", limit: 500 });
    return list.filter((r) => (r.sourceRef as any).channel === channel && (r.sourceRef as any).messageTs === ts);
  };
  const waitRun = async (channel: string, ts: string, timeoutMs = 5000) => {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const [r] = await runFor(channel, ts);
      if (r) return r;
      if (Date.now() > end) throw new Error(`no run for ${channel}:${ts}`);
      await sleep(50);
    }
  };
  const metaKey = (m: { ts: string }, channel: string) => fake.messages.get(`${channel}:${m.ts}`)?.metadata?.event_payload?.key as string | undefined;
  /** Bot messages of a thread whose dedupe key matches. */
  const posted = (channel: string, threadTs: string, re: RegExp) =>
    fake.threadMessages(channel, threadTs).filter((m) => m.user === fake.botUserId && re.test(metaKey(m, channel) ?? ""));
  const waitPosted = async (channel: string, threadTs: string, re: RegExp, timeoutMs = 90_000) => {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      const got = posted(channel, threadTs, re);
      if (got.length) return got;
      await sleep(100);
    }
    throw new Error(`nothing matching ${re} in thread ${threadTs}: ${JSON.stringify(fake.threadMessages(channel, threadTs).map((m) => m.text))}`);
  };
  const blocksText = (m: { blocks?: any[]; text: string }) => [m.text, ...(m.blocks ?? []).map((b) => b.text?.text ?? (b.elements ?? []).map((e: any) => e.text).join(" "))].join("\n");

  it("a mention gets a threaded status message within 3 s, edits in place, then one final message with working links; once closed, a reply continues the branch", async () => {
    const env = mention(CHANNEL, "Please plan first, then write hello.txt");
    const t0 = Date.now();
    const res = await postSlackEvent(url, SECRET, env);
    expect(res.status).toBe(200);
    const ack = await fake.waitFor((c) => c.method === "chat.postMessage" && c.args.thread_ts === env.event.ts, 3000);
    expect(ack.at - t0).toBeLessThan(3000);
    expect(ack.args.text).toMatch(/^(Queued|Starting a sandbox|Cloning the repo|Starting the agent|Working)/);
    await fake.waitFor((c) => c.method === "reactions.add" && c.args.timestamp === env.event.ts && c.args.name === "eyes", 3000);
    expect(fake.calls.some((c) => c.method === "auth.test")).toBe(false); // bot ids from the environment

    const run = await waitRun(CHANNEL, env.event.ts);
    expect(run.repo).toBe("demo"); // the channel's default
    const [final] = await waitPosted(CHANNEL, env.event.ts, /:final:/);
    const done = await srv.waitFor(run.id, ["idle"], 5000);
    expect(done.result.filesChanged).toEqual([{ path: "hello.txt", additions: 1, deletions: 0 }]);

    // The status message was edited in place (never re-posted), no more than about once a second.
    const status = fake.threadMessages(CHANNEL, env.event.ts).find((m) => metaKey(m, CHANNEL)?.endsWith(":status:0:post"))!;
    expect(status).toBeDefined();
    const edits = fake.calls.filter((c) => c.method === "chat.update" && c.args.ts === status.ts);
    expect(edits.length).toBeGreaterThanOrEqual(1);
    const times = [fake.calls.find((c) => c.method === "chat.postMessage" && c.args.thread_ts === env.event.ts)!.at, ...edits.map((e) => e.at)];
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(900);
    const statusNow = blocksText(fake.messages.get(`${CHANNEL}:${status.ts}`)!);
    expect(statusNow).toContain("*Done*");
    expect(statusNow).toContain("Write hello.txt"); // the agent's todo list
    expect(edits.some((e) => /Plan/.test(JSON.stringify(e.args.blocks)))).toBe(true);

    // One final message: what was done, the file with its counts, and links that work.
    expect(posted(CHANNEL, env.event.ts, /:final:/)).toHaveLength(1);
    const text = blocksText(final!);
    expect(text).toContain("*Done* in");
    expect(text).toContain("Finished:");
    expect(text).toContain("`hello.txt` +1 −0");
    const page = text.match(/<(http[^|>]+\/r\/[\w-]+)\|Run page>/)?.[1];
    expect(page).toBe(done.url);
    const pageRes = await fetch(page!);
    expect(pageRes.status).toBe(200);
    expect(await pageRes.text()).toContain('id="diff"');
    const diff = text.match(/<(http[^|>]+)\|Diff>/)?.[1];
    expect(diff).toBe(`${done.url}#diff`);
    expect((await fetch(diff!)).status).toBe(200);

    // Thread order: the mention, the status message, the final message. Reactions on the mention: ✅ only.
    expect(fake.threadMessages(CHANNEL, env.event.ts).map((m) => m.ts)).toEqual([env.event.ts, status.ts, final!.ts]);
    await sleep(1500);
    expect(fake.reactionsOn(CHANNEL, env.event.ts)).toEqual(["white_check_mark"]);

    // `stop` on the idle run closes it; a reply afterwards continues the same branch in a new run.
    const stop = message(CHANNEL, "stop", { thread_ts: env.event.ts });
    expect((await postSlackEvent(url, SECRET, stop)).status).toBe(200);
    await srv.waitFor(run.id, ["closed"], 10_000);
    await fake.waitFor((c) => c.method === "chat.postMessage" && c.args.thread_ts === env.event.ts && /^Closed/.test(c.args.text));
    const more = message(CHANNEL, "now add more", { thread_ts: env.event.ts });
    expect((await postSlackEvent(url, SECRET, more)).status).toBe(200);
    const next = await waitRun(CHANNEL, more.event.ts);
    expect(next.id).not.toBe(run.id);
    expect([next.branch, next.ref, next.repo]).toEqual([done.branch, done.branch, "demo"]);
    expect(next.prompt).toContain("New request: now add more");
    const end = Date.now() + 90_000;
    while (posted(CHANNEL, env.event.ts, /:final:/).length < 2 && Date.now() < end) await sleep(200);
    const second = posted(CHANNEL, env.event.ts, /:final:/)[1]!;
    expect(blocksText(second)).toContain("`now-add-more.txt` +1 −0");
    expect(repo.git(["show", `${done.branch}:hello.txt`])).toBe("hello");
    expect(repo.git(["show", `${done.branch}:now-add-more.txt`])).toBe("now add more");
  }, 150_000);

  it("a thread reply steers the working run (same OpenCode session); status answers; a reply after idle continues it; the agent's questions are answered with a button and in words", async () => {
    model.reset();
    const env = mention(CHANNEL, "HOLD write first.txt");
    expect((await postSlackEvent(url, SECRET, env)).status).toBe(200);
    await model.seen; // the agent is busy on the first prompt
    const run = await waitRun(CHANNEL, env.event.ts);

    const status = message(CHANNEL, "status", { thread_ts: env.event.ts });
    expect((await postSlackEvent(url, SECRET, status)).status).toBe(200);
    // A reply (through the outbox, say.ts: its dedupe key says so), not the run's status message.
    const answer = await fake.waitFor((c) => c.method === "chat.postMessage" && c.args.thread_ts === env.event.ts && /^slack:say:/.test(c.args.metadata?.event_payload?.key ?? "") && /Working/.test(c.args.text));
    expect(answer.args.text).toMatch(/^Working: Thinking \(\d+s\) — HOLD write first\.txt/);

    const steer = message(CHANNEL, "also add steer", { thread_ts: env.event.ts });
    expect((await postSlackEvent(url, SECRET, steer)).status).toBe(200);
    await fake.waitFor((c) => c.method === "reactions.add" && c.args.timestamp === steer.event.ts);
    const inputs = await srv.deckhand.store.inputs(run.id);
    expect(inputs.map((i) => [i.kind, i.text, i.source])).toEqual([
      ["prompt", "HOLD write first.txt", "slack"],
      ["prompt", "also add steer", "slack"],
    ]);
    model.release();
    await waitPosted(CHANNEL, env.event.ts, /:final:/);
    // The model saw the reply in the same conversation, after it was held.
    expect(srv.model.requests.some((r) => r.userTexts[0] === "HOLD write first.txt" && r.userTexts.includes("also add steer"))).toBe(true);
    const idle = await srv.waitFor(run.id, ["idle"], 5000);
    expect(idle.result.filesChanged.map((f: any) => f.path).sort()).toEqual(["also-add-steer.txt", "hold-write-first-txt.txt"]);

    // A reply after idle continues the same run (same branch), with a new status message and a second final message.
    const more = message(CHANNEL, "now second", { thread_ts: env.event.ts });
    expect((await postSlackEvent(url, SECRET, more)).status).toBe(200);
    const finals = async () => posted(CHANNEL, env.event.ts, /:final:/);
    const end = Date.now() + 90_000;
    while ((await finals()).length < 2 && Date.now() < end) await sleep(200);
    const both = await finals();
    expect(both).toHaveLength(2);
    expect(blocksText(both[1]!)).toContain("now-second.txt");
    expect(posted(CHANNEL, env.event.ts, /:status:\d+:post$/)).toHaveLength(2);
    const again = (await srv.api("GET", `/api/runs/${run.id}`)).body;
    expect(again.status).toBe("idle");
    expect(again.branch).toBe(idle.branch);
    expect((await runFor(CHANNEL, env.event.ts)).length).toBe(1);

    // The idle run's status message has Follow-up (no Stop): its form's text continues the run like a reply does.
    const current = await until("the idle status message", () => {
      const m = fake.messages.get(`${CHANNEL}:${posted(CHANNEL, env.event.ts, /:status:\d+:post$/)[1]!.ts}`)!;
      return /\*Done\*/.test(blocksText(m)) ? m : null;
    });
    const follow = current.blocks!.find((b: any) => b.type === "actions").elements;
    expect(follow.map((b: any) => b.action_id)).toEqual(["deckhand_followup"]);
    expect((await postSlackAction(url, SECRET, blockActionsPayload({ channel: CHANNEL, message: { ts: current.ts, thread_ts: env.event.ts, blocks: current.blocks }, button: { action_id: follow[0].action_id, value: follow[0].value } }))).status).toBe(200);
    const form = (await fake.waitFor((c) => c.method === "views.open" && c.args.view?.private_metadata?.includes(run.id))).args.view;
    expect(JSON.parse(form.private_metadata)).toMatchObject({ run: run.id, channel: CHANNEL, thread: env.event.ts });
    const sent = await postSlackAction(url, SECRET, viewSubmissionPayload({ view: fake.views.at(-1)!.view, values: { followup_text: { text: "form third" } } }));
    expect(JSON.parse(sent.body)).toEqual({ response_action: "clear" });
    const end2 = Date.now() + 90_000;
    while ((await finals()).length < 3 && Date.now() < end2) await sleep(200);
    expect(blocksText((await finals())[2]!)).toContain("form-third.txt");
    await until("the thread line", () => fake.threadMessages(CHANNEL, env.event.ts).some((m) => m.text === ":inbox_tray: Follow-up from *user-u0human001*: form third"));

    // Steered from the run page (one run, every surface): the thread shows who asked what, from where.
    const web = await signInToWeb(srv.url, "test-api-token-0123456789", "Ana");
    const fromPage = await fetch(`${srv.url}/runs/${run.id}/follow-up`, {
      method: "POST",
      headers: { cookie: web.cookie, "x-csrf-token": web.csrf, accept: "application/json", "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ text: "ASK for a name" }).toString(),
    });
    expect(fromPage.status).toBe(202);
    await until("the run page's follow-up in the thread", () => fake.threadMessages(CHANNEL, env.event.ts).some((m) => m.text === ":inbox_tray: Follow-up from *Ana* (the run page): ASK for a name"));
    // The agent asks in the thread: a button per option; a click answers it; the message then says how.
    const [q] = await waitPosted(CHANNEL, env.event.ts, /:question:[^:]+$/);
    const asked = fake.messages.get(`${CHANNEL}:${q!.ts}`)!;
    expect(blocksText(asked)).toContain("Which name? &lt;!channel&gt;"); // the agent's words, inert
    const buttons = asked.blocks!.find((b: any) => b.type === "actions").elements;
    expect(buttons.map((b: any) => b.text.text)).toEqual(["alpha", "beta"]);
    const beta = buttons[1];
    const click = (user?: string, channel = CHANNEL) =>
      postSlackAction(url, SECRET, blockActionsPayload({ user, channel, message: { ts: q!.ts, thread_ts: env.event.ts, blocks: asked.blocks }, button: { action_id: beta.action_id, value: beta.value, text: "beta" } }));
    // The same button replayed from another conversation answers nothing there.
    expect((await click(undefined, "C0ELSEWHERE")).status).toBe(200);
    await fake.waitFor(() => fake.ephemerals.some((e) => e.channel === "C0ELSEWHERE" && /does not belong/.test(e.text)));
    expect((await click()).status).toBe(200);
    const finals3 = async () => posted(CHANNEL, env.event.ts, /:final:/);
    const end3 = Date.now() + 90_000;
    while ((await finals3()).length < 4 && Date.now() < end3) await sleep(200);
    expect(blocksText((await finals3())[3]!)).toContain("answer-beta.txt");
    // A second click after the answer: told so, privately; nothing else happens.
    expect((await click()).status).toBe(200);
    await fake.waitFor(() => fake.ephemerals.some((e) => e.channel === CHANNEL && /not waiting for an answer|is idle/.test(e.text)));
    // The question's message was edited: how it was answered, no buttons left.
    const settled = fake.messages.get(`${CHANNEL}:${q!.ts}`)!;
    expect(blocksText(settled)).toContain("Answered: beta");
    expect(settled.blocks!.some((b: any) => b.type === "actions")).toBe(false);

    // Asked again, answered in words in the thread.
    const ask2 = message(CHANNEL, "ASK once more", { thread_ts: env.event.ts });
    expect((await postSlackEvent(url, SECRET, ask2)).status).toBe(200);
    const end4 = Date.now() + 90_000;
    while (posted(CHANNEL, env.event.ts, /:question:[^:]+$/).length < 2 && Date.now() < end4) await sleep(100);
    const words = message(CHANNEL, "Gamma Ray", { thread_ts: env.event.ts });
    expect((await postSlackEvent(url, SECRET, words)).status).toBe(200);
    while ((await finals3()).length < 5 && Date.now() < end4) await sleep(200);
    expect(blocksText((await finals3())[4]!)).toContain("answer-gamma-ray.txt");
    const inputs2 = await srv.deckhand.store.inputs(run.id);
    expect(inputs2.filter((i) => i.kind === "answer").map((i) => [JSON.parse(i.text!).answers, i.source])).toEqual([
      [[["beta"]], "slack"],
      [[["Gamma Ray"]], "slack"],
    ]);
    const sessions = new Set((await srv.api("GET", `/api/runs/${run.id}`)).body.events.map((e: any) => e.data?.sessionID).filter(Boolean));
    expect(sessions.size).toBe(1);
  }, 240_000);

  it("`stop` in a DM thread cancels the run: a Cancelled message and ❌", async () => {
    model.reset();
    const dm = "D0DIRECT01";
    const env = message(dm, "repo=demo HOLD write dm.txt"); // DMs need no mention
    expect(env.event.channel_type).toBe("im");
    expect((await postSlackEvent(url, SECRET, env)).status).toBe(200);
    await fake.waitFor((c) => c.method === "chat.postMessage" && c.args.channel === dm && c.args.thread_ts === env.event.ts, 3000);
    await model.seen;
    const run = await waitRun(dm, env.event.ts);
    expect(run.repo).toBe("demo");
    const stop = message(dm, "stop", { thread_ts: env.event.ts });
    expect((await postSlackEvent(url, SECRET, stop)).status).toBe(200);
    const cancelled = await srv.waitFor(run.id, ["cancelled"], 10_000);
    expect(cancelled.reason).toMatch(/^Stopped by .+ \(slack\)$/);
    const [end] = await waitPosted(dm, env.event.ts, /:end$/, 10_000);
    expect(blocksText(end!)).toContain("*Cancelled* after");
    await sleep(1500);
    expect(fake.reactionsOn(dm, env.event.ts)).toEqual(["x"]);
    model.release();
  }, 150_000);

  it("a failed run gets a message with the reason in plain words, and ❌", async () => {
    const env = mention(CHANNEL, "AUTHFAIL write nothing.txt");
    expect((await postSlackEvent(url, SECRET, env)).status).toBe(200);
    const run = await waitRun(CHANNEL, env.event.ts);
    const failed = await srv.waitFor(run.id, ["failed"], 90_000);
    expect(failed.failureCode).toBe("model_auth");
    const [end] = await waitPosted(CHANNEL, env.event.ts, /:end$/, 10_000);
    const text = blocksText(end!);
    expect(text).toMatch(/\*Failed\* after \d+s: The model provider rejected the API key/);
    expect(text).toContain("Check the model API key configured on the Deckhand server.");
    const status = posted(CHANNEL, env.event.ts, /:status:0:post$/)[0]!;
    await sleep(1500);
    expect(blocksText(fake.messages.get(`${CHANNEL}:${status.ts}`)!)).toContain(":x: *Failed*");
    expect(fake.reactionsOn(CHANNEL, env.event.ts)).toEqual(["x"]);
  }, 150_000);

  it("a retried delivery and the same mention arriving as a message event create one run; its budget stops it with a message saying so", async () => {
    const env = mention(CHANNEL, "write once.txt model=pricey", { eventId: "Ev0ONCE00001" });
    const [a, b] = await Promise.all([postSlackEvent(url, SECRET, env), postSlackEvent(url, SECRET, env, { retryNum: 1, retryReason: "http_timeout" })]);
    expect([a.status, b.status]).toEqual([200, 200]);
    // Slack also delivers the mention as a plain message event (another event_id, same channel + ts).
    const asMessage = messageEnvelope({ text: env.event.text, channel: CHANNEL, ts: env.event.ts, eventId: "Ev0ONCE00002" });
    expect((await postSlackEvent(url, SECRET, asMessage)).status).toBe(200);
    expect((await postSlackEvent(url, SECRET, env, { retryNum: 2, retryReason: "http_error" })).status).toBe(200);
    const run = await waitRun(CHANNEL, env.event.ts);
    await sleep(1500);
    expect(await runFor(CHANNEL, env.event.ts)).toHaveLength(1);
    expect(posted(CHANNEL, env.event.ts, /:status:0:post$/)).toHaveLength(1);
    const rows = await srv.deckhand.database.db.select().from(deliveries).where(sql`${deliveries.key} like ${"slack:%"} and ${deliveries.runId} = ${run.id}`);
    // Whichever of the two deliveries was handled first started the run (they are handled concurrently).
    const keys = rows.map((r) => r.key).sort();
    expect(keys.slice(1)).toEqual([`slack:msg:${CHANNEL}:${env.event.ts}`]);
    expect(["slack:event:Ev0ONCE00001", "slack:event:Ev0ONCE00002"]).toContain(keys[0]);
    // The thread is a conversation (not a delivery): its run is this one.
    const thread = await srv.deckhand.database.db.select().from(conversations).where(sql`${conversations.surface} = 'slack' and ${conversations.key} = ${`${CHANNEL}:${env.event.ts}`}`);
    expect(thread.map((c) => [c.runId, c.pending])).toEqual([[run.id, null]]);

    // The budget stopped the agent after its first turn: the final message says what was spent, the limit and how
    // to go on, and the file it wrote is delivered.
    const [final] = await waitPosted(CHANNEL, env.event.ts, /:final:/);
    const text = blocksText(final!);
    expect(text).toMatch(/Budget reached: this run spent \$\d+\.\d\d of its \$1\.50 limit\. To continue, reply to this run with budget=\+5/);
    expect(text).toContain("`write-once-txt.txt` +1 −0");
    const stopped = (await srv.api("GET", `/api/runs/${run.id}`)).body;
    expect(stopped).toMatchObject({ status: "idle", model: "pricey", result: { error: { code: "over_budget" } } });
    expect(stopped.usage.cost).toBeGreaterThanOrEqual(1.5);
    await srv.deckhand.service.stop(run.id, { source: "test" });
  }, 150_000);

  it("a bad or stale signature gets 401; nothing is posted or stored", async () => {
    const count = async () => {
      const [r] = await srv.deckhand.database.db.select({ n: sql<number>`count(*)::int` }).from(runs);
      const [d] = await srv.deckhand.database.db.select({ n: sql<number>`count(*)::int` }).from(deliveries);
      return [Number(r!.n), Number(d!.n)];
    };
    await sleep(1500); // let earlier runs' messages settle
    const before = await count();
    const requests = fake.requests.length;
    const env = mention(CHANNEL, "write evil.txt");
    expect((await postSlackEvent(url, SECRET, env, { badSignature: true })).status).toBe(401);
    expect((await postSlackEvent(url, SECRET, env, { timestampSec: Math.floor(Date.now() / 1000) - 6 * 60 })).status).toBe(401);
    const unsigned = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(env) });
    expect(unsigned.status).toBe(401);
    await sleep(500);
    expect(await count()).toEqual(before);
    expect(fake.requests.slice(requests).filter((r) => JSON.stringify(r.args).includes(env.event.ts))).toEqual([]);
    expect((await fetch(url)).status).toBe(404); // GET is not an events delivery
    // Slack's URL check when the events URL is saved is answered.
    expect(JSON.parse((await postSlackEvent(url, SECRET, urlVerification("challenge-1"))).body)).toEqual({ challenge: "challenge-1" });
  }, 150_000);

  it("an unknown repo gets a clear answer and no run; when no repo is known it asks, and a repo= reply starts the run", async () => {
    const bad = mention(CHANNEL, "repo=secret-stuff write x.txt");
    expect((await postSlackEvent(url, SECRET, bad)).status).toBe(200);
    const no = await fake.waitFor((c) => c.method === "chat.postMessage" && c.args.thread_ts === bad.event.ts);
    expect(no.args.text).toBe("I can't work in `secret-stuff`: it is not one of the allowed repos (`demo`, `other`). No run was started.");
    expect(await runFor(CHANNEL, bad.event.ts)).toHaveLength(0);

    // A channel without a default repo, and no DEFAULT_REPO: it asks in the thread, listing the names.
    const elsewhere = "C0NODEFAULT";
    const ask = mention(elsewhere, "write asked.txt");
    expect((await postSlackEvent(url, SECRET, ask)).status).toBe(200);
    const q = await fake.waitFor((c) => c.method === "chat.postMessage" && c.args.thread_ts === ask.event.ts);
    expect(q.args.text).toBe("Which repo should I work in? Reply in this thread with `repo=<name>` (or mention me again with it). Allowed: `demo`, `other`.");
    expect(await runFor(elsewhere, ask.event.ts)).toHaveLength(0);
    // The answer in the thread (no mention needed) starts the run with the original task.
    const answer = message(elsewhere, "repo=other", { thread_ts: ask.event.ts });
    expect((await postSlackEvent(url, SECRET, answer)).status).toBe(200);
    const run = await waitRun(elsewhere, ask.event.ts);
    expect([run.repo, run.prompt]).toEqual(["other", "write asked.txt"]);
    await fake.waitFor((c) => c.method === "chat.postMessage" && c.args.thread_ts === ask.event.ts && /:status:/.test(c.args.metadata?.event_payload?.key ?? ""), 3000);
    await srv.deckhand.service.stop(run.id, { source: "test" });
  }, 150_000);

  it("Slack answering 429 and 500 for a while, or losing an answer: the final message still arrives exactly once", async () => {
    model.reset();
    const env = mention(CHANNEL, "HOLD write flaky.txt");
    expect((await postSlackEvent(url, SECRET, env)).status).toBe(200);
    await model.seen;
    const run = await waitRun(CHANNEL, env.event.ts);
    await waitPosted(CHANNEL, env.event.ts, /:status:0:post$/, 5000);
    // Slack rate limits, then fails, then carries out a post whose answer never comes back.
    fake.failNext("chat.postMessage", 2, { status: 429, retryAfterSec: 1 });
    fake.failNext("*", 2, { status: 500 });
    fake.failNext("chat.postMessage", 1, { lostAnswer: true });
    const from = fake.requests.length;
    model.release();
    await srv.waitFor(run.id, ["idle"], 90_000);
    const [final] = await waitPosted(CHANNEL, env.event.ts, /:final:/, 60_000);
    expect(blocksText(final!)).toContain("`hold-write-flaky-txt.txt` +1 −0");
    await sleep(3000); // any duplicate would have been sent by now
    expect(posted(CHANNEL, env.event.ts, /:final:/)).toHaveLength(1);
    const seen = fake.requests.slice(from).map((r) => `${r.method}:${r.status}${r.injected ? "!" : ""}`);
    expect(seen.filter((x) => x.endsWith(":429!"))).toHaveLength(2);
    expect(seen.filter((x) => x.endsWith(":500!"))).toHaveLength(2);
    expect(seen).toContain("chat.postMessage:200!"); // carried out, answer lost
    expect(seen).toContain("conversations.replies:200"); // the retry looked before posting again
    const row = (await srv.deckhand.database.db.execute(sql`select state, attempts from notifications where dedupe_key like ${`slack:${run.id}:final:%`}`)) as any;
    const rows = Array.isArray(row) ? row : row.rows;
    expect(rows).toHaveLength(1);
    expect(rows[0].state).toBe("sent");
    expect(Number(rows[0].attempts)).toBeGreaterThanOrEqual(2);
    expect(fake.reactionsOn(CHANNEL, env.event.ts)).toEqual(["white_check_mark"]);
  }, 150_000);

  it.runIf(database === "postgres")("a restart while Slack is down: the next process sends the final message, once", async () => {
    // A second server on its own database, restarted in the middle: the outbox row survives in Postgres.
    const pg = await freshPostgres();
    const repos = { demo: makeRepo().bare };
    let other: TestServer | null = await startTestServer({ databaseUrl: pg.url, repos, handler: (r) => model.handler(r), env: slackEnv(fake), mount: (d) => mountSlack(d, { refreshMs: 60_000 }) });
    let next: TestServer | null = null;
    try {
      model.reset();
      const env = mention(CHANNEL, "HOLD write restart.txt");
      expect((await postSlackEvent(`${other.url}/slack/events`, SECRET, env)).status).toBe(200);
      await model.seen;
      await waitPosted(CHANNEL, env.event.ts, /:status:0:post$/, 5000);
      const [run] = await other.deckhand.store.list({ source: "slack" });
      fake.failNext("*", 100_000, { status: 500 }); // Slack is down
      model.release();
      await other.waitFor(run!.id, ["idle"], 90_000);
      const pending = async (db: TestServer) => {
        const r = (await db.deckhand.database.db.execute(sql`select state, attempts from notifications where dedupe_key = ${`slack:${run!.id}:final:1`}`)) as any;
        return (Array.isArray(r) ? r : r.rows)[0] as { state: string; attempts: number } | undefined;
      };
      const until = Date.now() + 20_000;
      while (!((await pending(other))?.attempts ?? 0) && Date.now() < until) await sleep(100);
      expect(await pending(other)).toMatchObject({ state: "pending" });
      await other.close();
      other = null;
      expect(posted(CHANNEL, env.event.ts, /:final:/)).toHaveLength(0);

      // Slack is back; a new process on the same database delivers what is owed.
      fake.clearFailures();
      next = await startTestServer({ databaseUrl: pg.url, repos, handler: (r) => model.handler(r), env: slackEnv(fake), mount: (d) => mountSlack(d, { refreshMs: 60_000 }) });
      const [final] = await waitPosted(CHANNEL, env.event.ts, /:final:/, 90_000);
      expect(blocksText(final!)).toContain("`hold-write-restart-txt.txt` +1 −0");
      await sleep(2000);
      expect(posted(CHANNEL, env.event.ts, /:final:/)).toHaveLength(1);
      expect(await pending(next)).toMatchObject({ state: "sent" });
    } finally {
      fake.clearFailures();
      await other?.close();
      await next?.close();
      await pg.drop();
    }
  }, 150_000);
});
