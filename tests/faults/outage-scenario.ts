/**
 * The outage scenario, shared by the test (tests/faults/outage.test.ts, which asserts the behaviour) and the
 * benchmark (bench/outage.ts, which reports the figures): a Slack run and a Linear run make progress while both
 * surfaces answer 500, finish during the outage, and then the surfaces answer again. We measure how long after
 * the recovery each owed final result lands, and whether stale progress went out before it.
 *
 * The runs are driven through the run store (no sandbox: the reconciler is off); everything surface-side is real
 * — the server, its signed webhooks, the outbox and the notifiers — against the Slack and Linear doubles.
 */
import { sql } from "drizzle-orm";
import { digest } from "../../src/events/fold.ts";
import { mountIntegrations } from "../../src/integrations/index.ts";
import { type FakeLinear, startFakeLinear } from "../fakes/linear.ts";
import { type FakeSlack, mentionEnvelope, messageEnvelope, postSlackEvent, startFakeSlack } from "../fakes/slack.ts";
import { startTestServer, type TestServer } from "../helpers/harness.ts";
import { sleep, until } from "./helpers.ts";
import { CHANNEL, linearEnv, linearSession, SLACK_SECRET, slackEnv, slackMention, TEAM } from "./surfaces.ts";

export interface OutageFigures {
  outageMs: number;
  /** From the surfaces answering again to the Slack final message / the Linear response. */
  slackFinalAfterRecoveryMs: number;
  linearResponseAfterRecoveryMs: number;
  /** Progress messages (working-state Slack edits, Linear thoughts and actions) queued during the outage. */
  staleProgressAtRecovery: number;
  /** Of those, how many were sent (rather than dropped). */
  staleProgressSent: number;
  /** Working-state Slack edits owed at the recovery and sent; Linear thoughts/actions sent after the recovery before the response. */
  progressSentBeforeFinal: { slack: number; linear: number };
  /** Requests each surface refused during the outage (how hard we retried). */
  refused: { slack: number; linear: number };
  /** Slack replies owed without a run, asked for during the outage ("help", "which repo?"): what each thread got. */
  replies: { help: string[]; whichRepo: string[] };
  /** A thread reply steering the working Slack run during the outage: its 📥 on the person's message afterwards. */
  steerAcknowledged: string[];
}

/** A mention in `channel` (seeded in the fake), delivered signed; and the bot's messages in its thread. */
function mentionIn(fake: FakeSlack, channel: string, text: string) {
  const env = mentionEnvelope({ text, channel, botUserId: fake.botUserId });
  fake.seedMessage({ channel, text: env.event.text, ts: env.event.ts });
  return {
    deliver: (baseUrl: string) => postSlackEvent(`${baseUrl}/slack/events`, SLACK_SECRET, env),
    botTexts: () => fake.threadMessages(channel, env.event.ts).filter((m) => m.user === fake.botUserId).map((m) => m.text),
  };
}

export async function runOutageScenario(o: { outageMs: number; log?: (s: string) => void }): Promise<OutageFigures> {
  const say = o.log ?? (() => {});
  const slack: FakeSlack = await startFakeSlack();
  const linear: FakeLinear = await startFakeLinear();
  linear.addTeam(TEAM);
  let srv: TestServer | null = null;
  try {
    srv = await startTestServer({ noReconciler: true, env: { ...slackEnv(slack), ...linearEnv(linear) }, mount: (d) => mountIntegrations(d) });
    const { store, database } = srv.deckhand;
    const rows = async (q: ReturnType<typeof sql>) => {
      const r = (await database.db.execute(q)) as unknown as Record<string, any>[] | { rows: Record<string, any>[] };
      return Array.isArray(r) ? r : r.rows;
    };

    const mention = slackMention(slack, "write outage.txt");
    const session = linearSession(linear, "write outage.txt");
    if ((await mention.deliver(srv.url)).status !== 200) throw new Error("the Slack mention was refused");
    if ((await session.deliver(srv.url)).status !== 200) throw new Error("the Linear session was refused");
    const slackRun = await until("the Slack run", async () => (await store.list({ source: "slack" }))[0]);
    const linearRun = await until("the Linear run", async () => (await store.list({ source: "linear" }))[0]);
    await until("the Slack status message", () => mention.botMessages().length > 0, 10_000);
    await until("the first Linear thought", () => session.activities().length > 0, 10_000);
    await until("the outbox drained", async () => (await rows(sql`select id from notifications where state = 'pending'`)).length === 0, 15_000);

    // Both surfaces go down; the runs keep making progress and finish.
    const before = { slack: slack.requests.length, linear: linear.ops.length };
    slack.failNext("*", 1_000_000, { status: 500 });
    linear.failNext("*", 1_000_000, { status: 500 });
    const downAt = Date.now();
    say("surfaces down");
    // People ask for help, and mention the bot where no repo is known, while Slack is down: owed replies, no run.
    const help = mentionIn(slack, CHANNEL, "help");
    const whichRepo = mentionIn(slack, "C0NOREPO01", "write asked.txt");
    for (const m of [help, whichRepo]) if ((await m.deliver(srv.url)).status !== 200) throw new Error("a Slack mention was refused during the outage");
    for (const run of [slackRun, linearRun]) {
      await store.transition(run.id, { type: "claim" });
      await store.phase(run.id, { phase: "sandbox_created", sandboxId: `outage-${run.id}` });
    }
    await sleep(Math.min(3000, o.outageMs / 4));
    for (const run of [slackRun, linearRun]) {
      await store.phase(run.id, { phase: "repo_cloned", baseCommit: "0".repeat(40) });
      await store.transition(run.id, { type: "sandbox_ready" });
    }
    // Someone steers the working Slack run in its thread: the follow-up is taken; its 📥 is owed to Slack.
    const steer = messageEnvelope({ text: "also this", channel: CHANNEL, thread_ts: mention.ts, botUserId: slack.botUserId });
    slack.seedMessage({ channel: CHANNEL, text: steer.event.text, ts: steer.event.ts, thread_ts: mention.ts });
    if ((await postSlackEvent(`${srv.url}/slack/events`, SLACK_SECRET, steer)).status !== 200) throw new Error("the Slack reply was refused during the outage");
    await until("the reply taken as a follow-up", async () => (await store.inputs(slackRun.id)).some((i) => i.text === "also this"), 10_000);
    await sleep(Math.min(3000, o.outageMs / 4));
    const result = (branch: string) => ({ summary: "Wrote outage.txt.", filesChanged: [], additions: 0, deletions: 0, branch, commit: null, pushed: false, usage: digest([]).usage, error: null });
    for (const run of [slackRun, linearRun]) {
      await store.transition(run.id, { type: "result_delivered", delivery: { result: result(run.branch), diff: "" }, deliveredInputSeq: 1, keepaliveUntil: new Date(Date.now() + 3_600_000) });
    }
    await sleep(Math.max(0, downAt + o.outageMs - Date.now()));

    // What is owed at the recovery.
    const stale = await rows(sql`select id, surface, state from notifications where role = 'progress' and created_at >= ${new Date(downAt).toISOString()}::timestamptz`);
    const refused = { slack: slack.requests.length - before.slack, linear: linear.ops.length - before.linear };
    slack.clearFailures();
    linear.clearFailures();
    const upAt = Date.now();
    say(`surfaces up after ${upAt - downAt} ms; progress queued during the outage: ${JSON.stringify(stale)}`);

    const finalMsg = await until("the Slack final message", () => mention.botMessages().find((m) => /:final:/.test(m.key ?? "")), 120_000, 50);
    const slackFinalAt = Date.now();
    void finalMsg;
    const response = await until("the Linear response", () => session.activities().find((a) => a.content.type === "response"), 120_000, 50);
    const linearAt = Math.max(upAt, Math.min(Date.now(), response.at));
    const slackAt = slackFinalAt;
    await until("the replies owed from the outage", () => help.botTexts().length > 0 && whichRepo.botTexts().length > 0, 60_000, 50);
    await until("the steer's reaction", () => slack.reactionsOn(CHANNEL, steer.event.ts).length > 0, 60_000, 50);
    await sleep(1500); // anything still queued behind the finals goes out now
    const ids = stale.map((r) => Number(r.id));
    const staleSent = ids.length ? await rows(sql`select id from notifications where state = 'sent' and response->>'superseded' is null and id in ${ids}`) : [];
    const progressSlack = staleSent.filter((r) => stale.find((x) => Number(x.id) === Number(r.id))?.surface === "slack").length;
    const progressLinear = session.activities().filter((a) => a.at >= upAt && a.at < response.at && (a.content.type === "thought" || a.content.type === "action")).length;
    return {
      outageMs: upAt - downAt,
      slackFinalAfterRecoveryMs: slackAt - upAt,
      linearResponseAfterRecoveryMs: linearAt - upAt,
      staleProgressAtRecovery: stale.length,
      staleProgressSent: staleSent.length,
      progressSentBeforeFinal: { slack: progressSlack, linear: progressLinear },
      refused,
      replies: { help: help.botTexts(), whichRepo: whichRepo.botTexts() },
      steerAcknowledged: slack.reactionsOn(CHANNEL, steer.event.ts),
    };
  } finally {
    await srv?.close();
    await Promise.all([slack.close(), linear.close()]);
  }
}
