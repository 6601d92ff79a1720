/**
 * Who may drive runs from Slack, through the real Bolt receiver with signed payloads: people not on
 * SLACK_ALLOWED_USERS, channels not on SLACK_ALLOWED_CHANNELS and Slack Connect users from another organisation
 * get one short reply saying why and whom to ask; no run starts, none is steered or stopped.
 */
import { count, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runInputs, runs } from "../../src/db/schema.ts";
import { slackRefusal } from "../../src/integrations/slack/allowlist.ts";
import { mountSlack } from "../../src/integrations/slack/index.ts";
import { DEFAULT_TEAM_ID, type FakeSlack, mentionEnvelope, messageEnvelope, postSlackEvent, startFakeSlack, slackBotEnv } from "../fakes/slack.ts";
import { postgresAvailable, startTestServer, type TestServer } from "../helpers/harness.ts";

const database = (await postgresAvailable()) ? "postgres" : "pglite";
const SECRET = "slack-signing-secret-allowlist-01";
const OK_CHANNEL = "C0PROJECT1";
const OTHER_CHANNEL = "C0ELSEWHR1";
const ALLOWED = "U0ALLOWED01";
const STRANGER = "U0STRANGER1";

describe("Slack allowlists (pure)", () => {
  const policy = { users: [ALLOWED], channels: [OK_CHANNEL], allowExternal: false };
  it("lets the allowed user in the allowed channel through, and says why to everyone else", () => {
    expect(slackRefusal({ user: ALLOWED, channel: OK_CHANNEL, workspace: "T1", userTeam: "T1" }, policy)).toBeNull();
    expect(slackRefusal({ user: STRANGER, channel: OK_CHANNEL }, policy)).toMatch(/SLACK_ALLOWED_USERS/);
    expect(slackRefusal({ user: ALLOWED, channel: OTHER_CHANNEL }, policy)).toMatch(/SLACK_ALLOWED_CHANNELS/);
    expect(slackRefusal({ user: ALLOWED, channel: OK_CHANNEL, workspace: "T1", userTeam: "T2" }, policy)).toMatch(/outside this workspace/);
    expect(slackRefusal({ user: ALLOWED, channel: OK_CHANNEL, workspace: "T1", userTeam: "T2" }, { ...policy, allowExternal: true })).toBeNull();
    expect(slackRefusal({ user: STRANGER, channel: OTHER_CHANNEL }, { users: [], channels: [], allowExternal: false })).toBeNull();
  });
});

describe(`Slack allowlists end to end (${database})`, () => {
  let fake: FakeSlack;
  let srv: TestServer;
  let url: string;
  const runCount = async () => Number((await srv.deckhand.database.db.select({ n: count() }).from(runs))[0]!.n);
  const repliesIn = (channel: string, ts: string) => fake.threadMessages(channel, ts).filter((m) => m.ts !== ts);

  beforeAll(async () => {
    fake = await startFakeSlack();
    srv = await startTestServer({
      database,
      noReconciler: true,
      env: {
        ...slackBotEnv(fake, SECRET),
                SLACK_CHANNEL_REPOS: `${OK_CHANNEL}=demo,${OTHER_CHANNEL}=demo`,
        SLACK_ALLOWED_USERS: ALLOWED,
        SLACK_ALLOWED_CHANNELS: OK_CHANNEL,
      },
      mount: (d) => mountSlack(d, { refreshMs: 60_000 }),
    });
    url = `${srv.url}/slack/events`;
  }, 240_000);
  afterAll(async () => {
    await srv?.close();
    await fake?.close();
  });

  /** Post a mention; wait for the bot's reply in its thread (or a run). */
  async function mention(o: { user: string; channel: string; external?: boolean; text?: string; thread_ts?: string }) {
    const env = mentionEnvelope({ text: o.text ?? "add a changelog", channel: o.channel, user: o.user, botUserId: fake.botUserId, ...(o.thread_ts ? { thread_ts: o.thread_ts } : {}) });
    if (o.external) {
      env.event.team = "T0OTHERORG1";
      env.event.user_team = "T0OTHERORG1";
    }
    expect(env.team_id).toBe(DEFAULT_TEAM_ID);
    const res = await postSlackEvent(url, SECRET, env);
    expect(res.status).toBe(200);
    return env.event.ts as string;
  }

  it("a person not on SLACK_ALLOWED_USERS gets one reply saying why and whom to ask; no run", async () => {
    const ts = await mention({ user: STRANGER, channel: OK_CHANNEL });
    await fake.waitFor((c) => c.method === "chat.postMessage" && c.args.thread_ts === ts);
    const replies = repliesIn(OK_CHANNEL, ts);
    expect(replies).toHaveLength(1);
    expect(replies[0]!.text).toMatch(/not on the list.*SLACK_ALLOWED_USERS/);
    expect(await runCount()).toBe(0);
  });

  it("a channel not on SLACK_ALLOWED_CHANNELS is refused, even for an allowed person", async () => {
    const ts = await mention({ user: ALLOWED, channel: OTHER_CHANNEL });
    await fake.waitFor((c) => c.method === "chat.postMessage" && c.args.thread_ts === ts);
    expect(repliesIn(OTHER_CHANNEL, ts)[0]!.text).toMatch(/this channel.*SLACK_ALLOWED_CHANNELS/);
    expect(await runCount()).toBe(0);
  });

  it("a Slack Connect user from another organisation is refused (SLACK_ALLOW_EXTERNAL is off)", async () => {
    const ts = await mention({ user: ALLOWED, channel: OK_CHANNEL, external: true });
    await fake.waitFor((c) => c.method === "chat.postMessage" && c.args.thread_ts === ts);
    expect(repliesIn(OK_CHANNEL, ts)[0]!.text).toMatch(/outside this workspace/);
    expect(await runCount()).toBe(0);
  });

  it("the allowed person starts a run; a stranger's stop and steer in its thread are refused", async () => {
    const ts = await mention({ user: ALLOWED, channel: OK_CHANNEL });
    const deadline = Date.now() + 15_000;
    while ((await runCount()) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(await runCount()).toBe(1);
    const [run] = await srv.deckhand.database.db.select().from(runs);
    const inputs = async () => (await srv.deckhand.database.db.select().from(runInputs).where(eq(runInputs.runId, run!.id))).length;
    const before = await inputs();

    for (const text of ["stop", "also delete the tests"]) {
      const env = messageEnvelope({ channel: OK_CHANNEL, user: STRANGER, text, thread_ts: ts });
      expect((await postSlackEvent(url, SECRET, env)).status).toBe(200);
      await fake.waitFor((c) => c.method === "chat.postMessage" && c.args.thread_ts === ts && /SLACK_ALLOWED_USERS/.test(String(c.args.text)) && !!c.args.text);
    }
    await new Promise((r) => setTimeout(r, 300));
    const after = await srv.deckhand.store.get(run!.id);
    expect(after!.status).toBe("queued");
    expect(await inputs()).toBe(before);
  });
});
