/**
 * Delegating a Linear issue to Deckhand, end to end: real signed webhooks, the real @linear/sdk against the fake
 * Linear API, real runs (bubblewrap sandbox, OpenCode, git) driven by the scripted model.
 */
import { randomUUID } from "node:crypto";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { notifications, type Run } from "../../src/db/schema.ts";
import { mountLinear, type LinearMount } from "../../src/integrations/linear/index.ts";
import { stableUuid } from "../../src/integrations/linear/stable-uuid.ts";
import { agentSessionCreatedPayload, agentSessionPromptedPayload, postLinearWebhook, startFakeLinear, type FakeActivity, type FakeLinear } from "../fakes/linear.ts";
import { scripts, type ModelHandler, type ModelReply } from "../fakes/model-server.ts";
import { makeRepo, startTestServer, type TestServer } from "../helpers/harness.ts";
import { until } from "../helpers/until.ts";

const SECRET = "linear-webhook-secret-for-tests";
const TEAM = { id: "team-eng", key: "ENG", name: "Engineering" };

/** A small controllable gate for holding the model busy. */
function gate<T>() {
  let open!: (v: T) => void;
  const p = new Promise<T>((r) => (open = r));
  return { p, open };
}

describe("Linear agent sessions drive runs", () => {
  let fake: FakeLinear;
  let srv: TestServer;
  let linear: LinearMount;
  let hook: string;

  beforeAll(async () => {
    fake = await startFakeLinear();
    fake.addTeam(TEAM);
    srv = await startTestServer({
      repos: { api: makeRepo({ "README.md": "# api\n", "src/app.ts": "export const x = 1;\n" }).bare, web: makeRepo().bare },
      env: {
        LINEAR_WEBHOOK_SECRET: SECRET,
        LINEAR_ACCESS_TOKEN: fake.token,
        LINEAR_API_URL: fake.apiUrl,
        LINEAR_TEAM_REPOS: "ENG=api",
      },
      mount: async (d) => void (linear = (await mountLinear(d))!),
    });
    hook = `${srv.url}/linear/webhook`;
  });
  afterAll(async () => {
    await srv?.close();
    await fake?.close();
  });

  const newIssue = (n: number, title: string, description: string, teamId = TEAM.id) =>
    fake.addIssue({ id: `issue-${n}-${randomUUID().slice(0, 6)}`, identifier: `${teamId === TEAM.id ? "ENG" : "OPS"}-${n}`, title, description, teamId });
  const delegate = async (issue: ReturnType<FakeLinear["addIssue"]>, comment?: string) => {
    const sessionId = randomUUID();
    fake.addSession({ id: sessionId, issueId: issue.id });
    const res = await postLinearWebhook(
      hook,
      SECRET,
      agentSessionCreatedPayload({
        sessionId,
        issue: { id: issue.id, identifier: issue.identifier, title: issue.title, description: issue.description, teamId: issue.teamId },
        ...(comment ? { comment: { id: randomUUID(), body: comment } } : {}),
        appUserId: fake.appUserId,
        organizationId: fake.organizationId,
      }),
    );
    return { sessionId, res, sentAt: Date.now() };
  };
  const prompt = (sessionId: string, issueId: string, body: string, signal?: "stop") =>
    postLinearWebhook(hook, SECRET, agentSessionPromptedPayload({ sessionId, issueId, body, signal, appUserId: fake.appUserId, organizationId: fake.organizationId }));
  const activitiesOf = (sessionId: string) => fake.activities.filter((a) => a.agentSessionId === sessionId);
  const runOf = (sessionId: string) =>
    until(`a run for session ${sessionId}`, async () => (await srv.deckhand.store.list({ source: "linear" })).find((r: Run) => (r.sourceRef as any).agentSessionId === sessionId));
  const waitActivity = (sessionId: string, pred: (a: FakeActivity) => boolean, what: string, ms = 60_000) =>
    until(what, () => activitiesOf(sessionId).find(pred), ms);

  it("created → a first thought within 10 s, actions for tool calls, the plan, the issue started, a response with the link", async () => {
    // The agent: plan, edit, run a command, finish the plan, answer.
    const todos = (s1: string, s2: string) => ({ name: "todowrite", arguments: { todos: [{ content: "Change x in src/app.ts", status: s1, priority: "high" }, { content: "Run the checks", status: s2, priority: "medium" }] } });
    srv.model.setHandler((req): ModelReply => {
      const n = req.toolResults.length;
      if (n === 0) return { toolCalls: [todos("in_progress", "pending")] };
      if (n === 1) return { toolCalls: [{ name: "edit", arguments: { filePath: "src/app.ts", oldString: "x = 1", newString: "x = 2" } }] };
      if (n === 2) return { toolCalls: [{ name: "bash", arguments: { command: "echo 3 checks passed", description: "Run the checks" } }] };
      if (n === 3) return { toolCalls: [todos("completed", "completed")] };
      return { text: "Set x to 2 in src/app.ts; the checks pass." };
    });
    const issue = newIssue(1, "Bump x", "x should be 2");
    const { sessionId, res, sentAt } = await delegate(issue);
    expect(res.status).toBe(200);
    expect(res.ms).toBeLessThan(5000);

    const first = await waitActivity(sessionId, () => true, "a first activity", 10_000);
    expect(first.at - sentAt).toBeLessThan(10_000);
    expect(first.content).toEqual({ type: "thought", body: "Starting a sandbox for api…" });
    // The run page is linked right away.
    const run0 = await runOf(sessionId);
    await until("the run page link", () => fake.sessions.get(sessionId)!.externalUrls.find((u) => u.url === srv.deckhand.service.runPageUrl(run0)), 10_000);
    // The issue's suggested branch, so Linear links the PR; the prompt is built from the issue.
    expect(run0.branch).toBe(issue.branchName);
    expect(run0.repo).toBe("api");
    expect(run0.prompt).toContain("Linear issue ENG-1: Bump x");
    expect(run0.prompt).toContain("<title>Bump x</title>");

    const run = await srv.waitFor(run0.id, ["idle", "failed", "cancelled"], 120_000);
    expect(run.status, run.reason).toBe("idle");
    const response = await waitActivity(sessionId, (a) => a.content.type === "response", "the response");
    const acts = activitiesOf(sessionId);

    expect(acts.map((a) => a.content)).toEqual(
      expect.arrayContaining([
        { type: "action", action: "Edited", parameter: "src/app.ts" },
        { type: "action", action: "Ran", parameter: "echo 3 checks passed", result: "3 checks passed" },
      ]),
    );
    // Order: the first thought, the actions, then the response last.
    expect(acts[0]!.content.type).toBe("thought");
    expect(acts.at(-1)).toBe(response);
    const body = response.content.body as string;
    expect(body).toContain("Set x to 2 in src/app.ts; the checks pass.");
    expect(body).toContain("`src/app.ts` (+1 −1)");
    const diffUrl = `${srv.deckhand.service.runPageUrl(run0)}#diff`;
    expect(body).toContain(`[See the diff](${diffUrl})`);

    const session = fake.sessions.get(sessionId)!;
    expect(session.status).toBe("complete");
    expect(session.plan).toEqual([
      { content: "Change x in src/app.ts", status: "completed" },
      { content: "Run the checks", status: "completed" },
    ]);
    expect(session.externalUrls.map((u) => u.url)).toEqual([srv.deckhand.service.runPageUrl(run0), diffUrl]);
    // The issue moved to the team's first started state (lowest position, not the first listed).
    expect(fake.issues.get(issue.id)!.stateId).toBe(fake.stateOfType(TEAM.id, "started")!.id);
    expect([...fake.attachments.values()].filter((a) => a.issueId === issue.id).map((a) => a.url)).toEqual([diffUrl]);
    // Each activity once, with our deterministic ids.
    expect(new Set(acts.map((a) => a.id)).size).toBe(acts.length);
    const rows = await srv.deckhand.database.db.select().from(notifications).where(eq(notifications.runId, run0.id));
    for (const r of rows) expect(r.state, `${r.dedupeKey}: ${r.lastError}`).toBe("sent");
    const activityRows = rows.filter((r) => r.kind.startsWith("activity."));
    expect(acts.map((a) => a.id).sort()).toEqual(activityRows.map((r) => stableUuid(r.dedupeKey)).sort());
  }, 240_000); // one real run in a hardened sandbox; its own waits go up to 120 s

  it("prompted steers the busy agent (the next model request has the text); the stop signal cancels with a final activity", async () => {
    const firstTurn = gate<ModelReply>();
    const secondTurn = gate<ModelReply>();
    const handler: ModelHandler = (req) => {
      const steered = req.userTexts.some((t) => t.includes("Please also mention the changelog"));
      return steered ? secondTurn.p : firstTurn.p;
    };
    srv.model.setHandler(handler);
    const issue = newIssue(2, "Write release notes", "For 2.4");
    const { sessionId } = await delegate(issue);
    const run = await runOf(sessionId);
    const requestsBefore = srv.model.requests.length;
    await until("the agent to be busy", async () => (await srv.deckhand.store.get(run.id))!.status === "running" && srv.model.requests.length > requestsBefore, 90_000);

    const r = await prompt(sessionId, issue.id, "Please also mention the changelog");
    expect(r.status).toBe(200);
    await until("the follow-up delivered", async () => (await srv.deckhand.store.inputs(run.id)).find((i) => i.seq === 2)?.deliveredAt, 30_000);
    firstTurn.open({ text: "Working on it." });
    const steeredReq = await until("a model request with the prompt", () => srv.model.requests.find((q) => q.userTexts.some((t) => t.includes("Please also mention the changelog"))), 30_000);
    expect(steeredReq.userTexts.join("\n")).toContain("Linear issue ENG-2: Write release notes");
    await waitActivity(sessionId, (a) => a.content.type === "thought" && a.content.body === "Got it; passing that to the agent.", "the acknowledgement", 10_000);

    // Stop while the second turn is held.
    const stop = await prompt(sessionId, issue.id, "", "stop");
    expect(stop.status).toBe(200);
    const done = await srv.waitFor(run.id, ["cancelled", "closed", "failed", "idle"], 30_000);
    expect(done.status).toBe("cancelled");
    const final = await waitActivity(sessionId, (a) => a.content.type === "response", "the final activity", 15_000);
    expect(final.content.body).toMatch(/^Stopped\. Stopped by /);
    secondTurn.open({ text: "too late" });
    expect(activitiesOf(sessionId).filter((a) => a.content.type === "response" || a.content.type === "error")).toHaveLength(1);
  });

  it("no repo for the team: a select elicitation of the repos; the pick starts the run there; the agent's question is a select elicitation and the pick answers it", async () => {
    // The agent asks which cache (OpenCode's `question` tool), then finishes with what it was told.
    const question = "Which cache should I tune?";
    srv.model.setHandler((req): ModelReply =>
      req.toolResults.length === 0
        ? { toolCalls: [{ name: "question", arguments: { questions: [{ question, header: "Cache", options: [{ label: "lru", description: "the LRU cache" }, { label: "ttl", description: "the TTL cache" }] }] } }] }
        : { text: "Nothing to change." },
    );
    const issue = newIssue(3, "Tune the cache", "It is slow", "team-ops");
    const { sessionId } = await delegate(issue, "@deckhand can you look?");
    const ask = await waitActivity(sessionId, (a) => a.content.type === "elicitation", "the question", 10_000);
    expect(ask.content.body).toContain("Reply with one of: `api`, `web`");
    expect(ask.signal).toBe("select");
    expect(ask.signalMetadata).toEqual({ options: [{ label: "api", value: "api" }, { label: "web", value: "web" }] });
    expect(await srv.deckhand.store.list({ source: "linear" }).then((rs) => rs.some((r) => (r.sourceRef as any).agentSessionId === sessionId))).toBe(false);

    await prompt(sessionId, issue.id, "web");
    const run = await runOf(sessionId);
    expect(run.repo).toBe("web");
    expect(run.prompt).toContain("Linear issue OPS-3: Tune the cache");
    expect(run.prompt).toContain("@deckhand can you look?");
    await waitActivity(sessionId, (a) => a.content.type === "thought" && a.content.body === "Starting a sandbox for web…", "the start thought", 10_000);

    // The agent's question: an elicitation quoting it, the options to pick; the session waits for input.
    const asked = await waitActivity(sessionId, (a) => a.content.type === "elicitation" && a.content.body.includes(question), "the agent's question", 120_000);
    expect(asked.signal).toBe("select");
    expect(asked.signalMetadata).toEqual({ options: [{ label: "lru", value: "lru" }, { label: "ttl", value: "ttl" }] });
    expect(asked.content.body).toContain("**The agent's question** (its own words");
    expect(asked.content.body).toContain("> - ttl — the TTL cache");
    expect(fake.sessions.get(sessionId)!.status).toBe("awaitingInput");
    // The pick comes back as a signed `prompted` with the label: it answers the question (not a follow-up).
    expect((await prompt(sessionId, issue.id, "ttl")).status).toBe(200);
    await waitActivity(sessionId, (a) => a.content.type === "thought" && a.content.body === "Got your answer; passing it to the agent.", "the acknowledgement", 10_000);

    const done = await srv.waitFor(run.id, ["idle", "failed"], 120_000);
    expect(done.status, done.reason).toBe("idle");
    const results = srv.model.requests.at(-1)!.toolResults.map((t) => t.content);
    expect(results).toHaveLength(1);
    expect(results[0]).toContain(`"${question}"="ttl"`);
    expect((await srv.deckhand.store.inputs(run.id)).map((i) => i.kind)).toEqual(["prompt", "answer"]);
    const response = await waitActivity(sessionId, (a) => a.content.type === "response", "the response");
    expect(response.content.body).toContain("Nothing to change.");
    expect(response.content.body).toContain("No files were changed.");
    // One elicitation per question, however often the run was planned.
    expect(activitiesOf(sessionId).filter((a) => a.content.type === "elicitation" && a.content.body.includes(question))).toHaveLength(1);
  }, 240_000);

  it("a failed run ends the session with an error activity in plain words", async () => {
    srv.model.setHandler(() => ({ httpStatus: 401, message: "Incorrect API key provided" }));
    const issue = newIssue(5, "Anything", "at all");
    const { sessionId } = await delegate(issue);
    const run = await runOf(sessionId);
    const done = await srv.waitFor(run.id, ["idle", "failed"], 120_000);
    expect(done.status).toBe("failed");
    const err = await waitActivity(sessionId, (a) => a.content.type === "error", "the error activity", 30_000);
    expect(err.content.body).toMatch(/^The run failed: The model provider rejected the API key/);
    expect(fake.sessions.get(sessionId)!.status).toBe("error");
    expect(activitiesOf(sessionId).some((a) => a.content.type === "response")).toBe(false);
  });

  it("Linear failing for a while (500s, rate limits, a 502): every activity arrives exactly once, in order", async () => {
    srv.model.setHandler(scripts.writeFile("notes.txt", "hello\n", "Wrote notes.txt."));
    fake.failNext("createAgentActivity", 2, { status: 500 });
    fake.failNext("updateAgentSession", 1, { rateLimited: true, retryAfterSec: 1 });
    fake.failNext("issue", 1, { status: 502 });
    fake.failNext("createAttachment", 1, { rateLimited: true, status: 429, retryAfterSec: 1 });
    const issue = newIssue(4, "Add notes", "notes.txt please");
    const { sessionId } = await delegate(issue);
    const run = await runOf(sessionId);
    const done = await srv.waitFor(run.id, ["idle", "failed"], 120_000);
    expect(done.status, done.reason).toBe("idle");
    const response = await waitActivity(sessionId, (a) => a.content.type === "response", "the response", 60_000);
    await linear.settled();
    const rows = await until("all messages sent", async () => {
      const rs = await srv.deckhand.database.db.select().from(notifications).where(and(eq(notifications.runId, run.id)));
      return rs.every((r) => r.state === "sent") ? rs : null;
    });
    const acts = activitiesOf(sessionId);
    expect(acts.map((a) => a.content.type)[0]).toBe("thought");
    expect(acts.at(-1)).toBe(response);
    expect(acts.some((a) => a.content.type === "action" && a.content.parameter === "notes.txt")).toBe(true);
    // Exactly once: one activity per queued activity message, no duplicates.
    const activityRows = rows.filter((r) => r.kind.startsWith("activity."));
    expect(acts).toHaveLength(activityRows.length);
    expect(new Set(acts.map((a) => a.id)).size).toBe(acts.length);
    // The failures happened and were retried.
    expect(fake.opsNamed("createAgentActivity").filter((o) => o.status === 500)).toHaveLength(2);
    expect(rows.some((r) => r.attempts > 1)).toBe(true);
    // And everything else still landed.
    expect(fake.issues.get(issue.id)!.stateId).toBe(fake.stateOfType(TEAM.id, "started")!.id);
    expect(fake.sessions.get(sessionId)!.externalUrls).toHaveLength(2);
    expect([...fake.attachments.values()].some((a) => a.issueId === issue.id)).toBe(true);
  });
});
