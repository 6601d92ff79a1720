/**
 * Upgrading to the conversations table (migration 0006): a database made at 0005 with Slack threads (kept as
 * `deliveries` keys), Linear agent sessions and classic threads (found through `runs.source_ref`) and "which repo?"
 * questions (Slack `slack:ask:` keys, Linear outbox payloads) is migrated by a real server start; the conversation
 * rows are there, and a Slack reply, a Linear `prompted`, a classic comment and the answers to the old questions
 * reach their own runs, never another conversation's.
 */
import fs from "node:fs";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Database, MIGRATIONS_DIR, openDatabase } from "../../src/db/database.ts";
import { conversations, deliveries, notifications, runInputs, runs } from "../../src/db/schema.ts";
import { mountLinear } from "../../src/integrations/linear/index.ts";
import { threadCommentId } from "../../src/integrations/linear/plan-messages.ts";
import { mountSlack } from "../../src/integrations/slack/index.ts";
import { agentSessionPromptedPayload, commentCreatedPayload, postLinearWebhook, startFakeLinear, type FakeLinear } from "../fakes/linear.ts";
import { type FakeSlack, messageEnvelope, nextTs, postSlackEvent, slackBotEnv, startFakeSlack } from "../fakes/slack.ts";
import { freshPostgres, makeRepo, postgresAvailable, startTestServer, type TestServer, tmpDir } from "../helpers/harness.ts";
import { until } from "../helpers/until.ts";

const usePostgres = await postgresAvailable();
const SLACK_SECRET = "slack-signing-secret-for-tests-0001";
const LINEAR_SECRET = "linear-webhook-secret-for-tests";
const CHANNEL = "C0UPGRADE1";

/** Apply the migrations up to and including `lastIdx`, as an install of that version did. */
async function migrateTo(database: Database, lastIdx: number): Promise<void> {
  const dir = tmpDir("deckhand-migrations-");
  fs.mkdirSync(path.join(dir, "meta"));
  const journal = JSON.parse(fs.readFileSync(path.join(MIGRATIONS_DIR, "meta/_journal.json"), "utf8"));
  journal.entries = journal.entries.filter((e: { idx: number }) => e.idx <= lastIdx);
  expect(journal.entries.at(-1).tag).toBe("0005_conversation");
  for (const e of journal.entries) fs.copyFileSync(path.join(MIGRATIONS_DIR, `${e.tag}.sql`), path.join(dir, `${e.tag}.sql`));
  fs.writeFileSync(path.join(dir, "meta/_journal.json"), JSON.stringify(journal));
  const { drizzle } = await import("drizzle-orm/postgres-js");
  const { migrate } = await import("drizzle-orm/postgres-js/migrator");
  await database.session((s) => migrate(drizzle(s), { migrationsFolder: dir }));
}

describe(`an install upgraded to the conversations table (${usePostgres ? "postgres" : "pglite"})`, () => {
  let slack: FakeSlack;
  let linear: FakeLinear;
  let srv: TestServer;
  let pg: { url: string; drop: () => Promise<void> } | null = null;
  const dataDir = tmpDir("deckhand-upgrade-");
  const T1 = nextTs();
  const T2 = nextTs();
  const T3 = nextTs();
  const classicRunId = "r-oldclassic1";
  const slackRef = (ts: string) => ({ channel: CHANNEL, threadTs: ts, messageTs: ts, user: "U0OLDUSER1" });
  const linearRef = (over: Record<string, unknown>) => ({ workspaceId: "", identifier: "ENG-1", ...over });

  beforeAll(async () => {
    slack = await startFakeSlack();
    linear = await startFakeLinear();
    if (usePostgres) pg = await freshPostgres();
    // The old install: schema at 0005 and what it kept.
    const old = await openDatabase({ url: pg?.url, dataDir });
    try {
      await migrateTo(old, 5);
      const org = linear.organizationId;
      const run = (id: string, source: string, sourceRef: Record<string, unknown>, status: string) => ({
        id,
        status,
        repo: "demo",
        branch: `deckhand/${id}`,
        prompt: `old task of ${id}`,
        title: `old ${id}`,
        source,
        sourceRef: source === "linear" ? { ...sourceRef, workspaceId: org } : sourceRef,
        pageToken: `tok-${id}`,
      });
      await old.db.insert(runs).values([
        run("r-oldslack1", "slack", slackRef(T1), "running"),
        run("r-oldslack2", "slack", slackRef(T2), "running"),
        run("r-oldagent1", "linear", linearRef({ mode: "agent", agentSessionId: "sess-old", issueId: "issue-old" }), "running"),
        run(classicRunId, "linear", linearRef({ mode: "classic", issueId: "issue-classic", identifier: "ENG-2" }), "closed"),
      ]);
      await old.db.insert(runInputs).values(["r-oldslack1", "r-oldslack2", "r-oldagent1", classicRunId].map((runId) => ({ runId, seq: 1, kind: "prompt", text: `old task of ${runId}`, source: "test" })));
      await old.db.insert(deliveries).values([
        { key: `slack:thread:${CHANNEL}:${T1}`, source: "slack", runId: "r-oldslack1" },
        { key: `slack:thread:${CHANNEL}:${T2}`, source: "slack", runId: "r-oldslack2" },
        { key: `slack:msg:${CHANNEL}:${T1}`, source: "slack", runId: "r-oldslack1" },
        { key: `slack:event:Ev0OLD00001`, source: "slack", runId: "r-oldslack1" },
        { key: `slack:ask:${CHANNEL}:${T3}`, source: "slack", runId: null },
      ]);
      // Linear's "which repo?" in an agent session, kept in the elicitation's outbox payload.
      const pending = { workspaceId: org, mode: "agent", sessionId: "sess-ask", issueId: "issue-ask", identifier: "ENG-3", title: "Add a footer", request: "make the footer dark", author: "Ann" };
      await old.db.insert(notifications).values({
        surface: "linear",
        dedupeKey: "linear:ask:sess-ask:created",
        orderingKey: "linear:session:sess-ask",
        kind: "activity.elicitation",
        state: "sent",
        payload: { op: "activity", workspaceId: org, sessionId: "sess-ask", id: randomUUID(), content: { type: "elicitation", body: "Which repository?" }, pending },
      });
    } finally {
      await old.close();
    }
    // The Slack thread we asked in: its first message is the task.
    slack.seedMessage({ channel: CHANNEL, text: `<@${slack.botUserId}> write asked.txt`, ts: T3 });

    // The new version starts on that database: migrations run, then Slack and Linear requests come in.
    srv = await startTestServer({
      ...(pg ? { databaseUrl: pg.url } : { dataDir }),
      noReconciler: true, // the old runs stay as they are; inputs are only queued
      repos: { demo: makeRepo().bare, api: makeRepo().bare },
      env: { ...slackBotEnv(slack, SLACK_SECRET), LINEAR_WEBHOOK_SECRET: LINEAR_SECRET, LINEAR_ACCESS_TOKEN: linear.token, LINEAR_API_URL: linear.apiUrl },
      mount: async (d) => {
        await mountSlack(d, { refreshMs: 60_000 });
        await mountLinear(d);
      },
    });
  }, 300_000);
  afterAll(async () => {
    await srv?.close();
    await pg?.drop();
    await slack?.close();
    await linear?.close();
  }, 60_000);

  const texts = async (runId: string) => (await srv.deckhand.store.inputs(runId)).map((i) => i.text);
  const slackReply = (ts: string, text: string) => postSlackEvent(`${srv.url}/slack/events`, SLACK_SECRET, messageEnvelope({ channel: CHANNEL, text, thread_ts: ts }));
  const linearHook = (payload: unknown) => postLinearWebhook(`${srv.url}/linear/webhook`, LINEAR_SECRET, payload);

  it("the migration made one conversation row per old thread, session, issue and question, and left deliveries to dedupe keys", async () => {
    const rows = await srv.deckhand.database.db.select().from(conversations);
    const byKey = Object.fromEntries(rows.map((r) => [`${r.surface}/${r.key}`, { runId: r.runId, pending: r.pending }]));
    expect(byKey[`slack/${CHANNEL}:${T1}`]).toEqual({ runId: "r-oldslack1", pending: null });
    expect(byKey[`slack/${CHANNEL}:${T2}`]).toEqual({ runId: "r-oldslack2", pending: null });
    expect(byKey[`slack/${CHANNEL}:${T3}`]).toEqual({ runId: null, pending: { kind: "repo" } });
    expect(byKey["linear/session:sess-old"]).toEqual({ runId: "r-oldagent1", pending: null });
    expect(byKey["linear/issue:issue-old"]).toEqual({ runId: "r-oldagent1", pending: null });
    expect(byKey["linear/issue:issue-classic"]).toEqual({ runId: classicRunId, pending: null });
    expect(byKey[`linear/thread:${threadCommentId(classicRunId)}`]).toEqual({ runId: classicRunId, pending: null });
    expect(byKey["linear/session:sess-ask"]).toMatchObject({ runId: null, pending: { kind: "repo", start: { sessionId: "sess-ask", request: "make the footer dark" } } });
    const keys = (await srv.deckhand.database.db.select({ key: deliveries.key }).from(deliveries)).map((d) => d.key).sort();
    expect(keys).toEqual([`slack:event:Ev0OLD00001`, `slack:msg:${CHANNEL}:${T1}`]);
  });

  it("replies in two old Slack threads of one channel each reach their own run only", async () => {
    expect((await slackReply(T1, "steer the first")).status).toBe(200);
    expect((await slackReply(T2, "steer the second")).status).toBe(200);
    await until("both replies stored", async () => (await texts("r-oldslack1")).includes("steer the first") && (await texts("r-oldslack2")).includes("steer the second"), 20_000);
    expect(await texts("r-oldslack1")).toEqual(["old task of r-oldslack1", "steer the first"]);
    expect(await texts("r-oldslack2")).toEqual(["old task of r-oldslack2", "steer the second"]);
  });

  it("the answer to an old Slack 'which repo?' starts the run with the thread's task, and the thread now has that run", async () => {
    expect((await slackReply(T3, "repo=api")).status).toBe(200);
    const started = await until("the asked run", async () => (await srv.deckhand.store.list({ source: "slack" })).find((r) => (r.sourceRef as { threadTs?: string }).threadTs === T3));
    expect([started.repo, started.prompt]).toEqual(["api", "write asked.txt"]);
    const [row] = await srv.deckhand.database.db.select().from(conversations).where(sql`${conversations.surface} = 'slack' and ${conversations.key} = ${`${CHANNEL}:${T3}`}`);
    expect([row!.runId, row!.pending]).toEqual([started.id, null]);
  });

  it("a Linear prompt in an old session steers its run; the answer to an old 'which repo?' starts the asked run", async () => {
    const org = linear.organizationId;
    const prompted = (sessionId: string, issueId: string, body: string) => agentSessionPromptedPayload({ sessionId, issueId, body, appUserId: "app-user", organizationId: org });
    expect((await linearHook(prompted("sess-old", "issue-old", "steer the agent session"))).status).toBe(200);
    await until("the Linear follow-up", async () => (await texts("r-oldagent1")).includes("steer the agent session"), 20_000);
    expect(await texts("r-oldslack1")).not.toContain("steer the agent session");

    expect((await linearHook(prompted("sess-ask", "issue-ask", "api"))).status).toBe(200);
    const started = await until("the asked Linear run", async () => (await srv.deckhand.store.list({ source: "linear" })).find((r) => (r.sourceRef as { agentSessionId?: string }).agentSessionId === "sess-ask"), 20_000);
    expect(started.repo).toBe("api");
    expect(started.prompt).toContain("make the footer dark");
  });

  it("a reply in an old classic comment thread continues that run on its branch", async () => {
    const reply = commentCreatedPayload({ comment: { id: randomUUID(), body: "now add a header", issueId: "issue-classic", parentId: threadCommentId(classicRunId), userId: "human-1" }, organizationId: linear.organizationId });
    expect((await linearHook(reply)).status).toBe(200);
    const next = await until("the continuation", async () => (await srv.deckhand.store.list({ source: "linear" })).find((r) => r.id !== classicRunId && (r.sourceRef as { issueId?: string }).issueId === "issue-classic"), 20_000);
    expect(next.branch).toBe(`deckhand/${classicRunId}`);
    expect(next.prompt).toContain("now add a header");
  });
});
