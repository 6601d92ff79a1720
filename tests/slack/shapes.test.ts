/**
 * Real-world Slack message shapes through the real Bolt receiver (signed Events API envelopes) and the fake Slack
 * Web API. No sandbox starts (noReconciler): what matters is whether a run is created and with which task.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mountSlack } from "../../src/integrations/slack/index.ts";
import { type FakeSlack, mentionEnvelope, messageEnvelope, postSlackEvent, richTextBlocks, startFakeSlack, slackBotEnv } from "../fakes/slack.ts";
import { makeRepo, startTestServer, type TestServer } from "../helpers/harness.ts";

const SECRET = "slack-signing-secret-for-tests-0002";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("Slack: real-world message shapes", () => {
  let fake: FakeSlack;
  let srv: TestServer;
  let url: string;

  beforeAll(async () => {
    fake = await startFakeSlack();
    srv = await startTestServer({
      noReconciler: true,
      repos: { demo: makeRepo().bare },
      env: {
        ...slackBotEnv(fake, SECRET),
                DEFAULT_REPO: "demo",
      },
      mount: (d) => mountSlack(d, { refreshMs: 60_000 }),
    });
    url = `${srv.url}/slack/events`;
  });
  afterAll(async () => {
    await srv?.close();
    await fake?.close();
  });

  const runsFrom = async (channel: string, ts: string) =>
    (await srv.deckhand.store.list({ source: "slack", limit: 500 })).filter((r) => (r.sourceRef as any).channel === channel && (r.sourceRef as any).messageTs === ts);
  const waitRun = async (channel: string, ts: string) => {
    const end = Date.now() + 10_000;
    for (;;) {
      const [r] = await runsFrom(channel, ts);
      if (r) return r;
      if (Date.now() > end) throw new Error(`no run for ${channel}:${ts}; said: ${JSON.stringify(fake.threadMessages(channel, ts).map((m) => m.text))}`);
      await sleep(50);
    }
  };

  it("an app_mention without a user (a workflow) is refused in plain words; no run", async () => {
    const env = mentionEnvelope({ text: "deploy the thing", channel: "C0WORKFLOW", botUserId: fake.botUserId });
    delete env.event.user;
    expect((await postSlackEvent(url, SECRET, env)).status).toBe(200);
    const end = Date.now() + 10_000;
    while (!fake.threadMessages("C0WORKFLOW", env.event.ts).some((m) => m.user === fake.botUserId) && Date.now() < end) await sleep(50);
    const said = fake.threadMessages("C0WORKFLOW", env.event.ts).filter((m) => m.user === fake.botUserId);
    expect(said.map((m) => m.text)).toEqual([expect.stringMatching(/only take work from a person.*no user/)]);
    await sleep(300);
    expect(await runsFrom("C0WORKFLOW", env.event.ts)).toEqual([]);
  });

  it("a message forwarded into a DM: the task is the shared message; attached files are named", async () => {
    const env = messageEnvelope({ text: "", channel: "D0FORWARD1" });
    env.event.blocks = [];
    env.event.attachments = [
      {
        is_share: true,
        author_name: "Ana",
        author_id: "U0ANA00001",
        text: "Please bump the version in package.json to 2.1.0",
        fallback: "[December 4th] Ana: Please bump…",
        channel_id: "C0ELSEWHERE",
        ts: "1764800000.000100",
        from_url: "https://deckhand-test.slack.com/archives/C0ELSEWHERE/p1764800000000100",
        files: [{ id: "F0SHARED01", name: "release-notes.md", permalink: "https://deckhand-test.slack.com/files/U0ANA00001/F0SHARED01/release-notes.md" }],
      },
    ];
    env.event.files = [{ id: "F0TRACE001", name: "trace.log", permalink: "https://deckhand-test.slack.com/files/U0HUMAN001/F0TRACE001/trace.log" }];
    expect((await postSlackEvent(url, SECRET, env)).status).toBe(200);
    const run = await waitRun("D0FORWARD1", env.event.ts);
    expect(run.prompt).toContain("Please bump the version in package.json to 2.1.0");
    expect(run.prompt).toContain("Ana");
    expect(run.prompt).toContain("release-notes.md");
    expect(run.prompt).toContain("trace.log");
  });

  it("a block-only DM (empty text, the words in rich-text blocks) starts a run with those words", async () => {
    const env = messageEnvelope({ text: "", channel: "D0BLOCKS01" });
    env.event.blocks = richTextBlocks("Fix the typo in the README heading");
    expect((await postSlackEvent(url, SECRET, env)).status).toBe(200);
    const run = await waitRun("D0BLOCKS01", env.event.ts);
    expect(run.prompt).toBe("Fix the typo in the README heading");
  });
});
