/**
 * The classic path for workspaces without the agent app: assigning the issue to the bot user starts a run, the
 * bot answers in one comment thread, and replies in that thread steer the agent. Uses a personal API key.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Run } from "../../src/db/schema.ts";
import { mountLinear } from "../../src/integrations/linear/index.ts";
import { threadCommentId } from "../../src/integrations/linear/plan-messages.ts";
import { commentCreatedPayload, issueAssignedPayload, postLinearWebhook, startFakeLinear, type FakeLinear } from "../fakes/linear.ts";
import type { ModelReply } from "../fakes/model-server.ts";
import { makeRepo, startTestServer, type TestServer } from "../helpers/harness.ts";
import { until } from "../helpers/until.ts";

const SECRET = "linear-webhook-secret-for-tests";
const BOT = "bot-user-1";

describe("classic assignment to the bot user", () => {
  let fake: FakeLinear;
  let srv: TestServer;
  let hook: string;

  beforeAll(async () => {
    fake = await startFakeLinear();
    fake.addTeam({ id: "team-web", key: "WEB", name: "Web" });
    srv = await startTestServer({
      repos: { api: makeRepo().bare, web: makeRepo({ "index.html": "<h1>hi</h1>\n" }).bare },
      env: { LINEAR_WEBHOOK_SECRET: SECRET, LINEAR_API_KEY: fake.apiKey, LINEAR_API_URL: fake.apiUrl, LINEAR_BOT_USER_ID: BOT, LINEAR_TEAM_REPOS: "ENG=api,WEB=web" },
      mount: (d) => mountLinear(d),
    });
    hook = `${srv.url}/linear/webhook`;
  });
  afterAll(async () => {
    await srv?.close();
    await fake?.close();
  });

  it("assignment starts a run on the team's repo; a reply in the thread steers; the result is a reply in the thread", async () => {
    const issue = fake.addIssue({ id: "issue-web-7", identifier: "WEB-7", title: "Add a footer", description: "Every page needs one", teamId: "team-web" });
    fake.comments.push({ id: randomUUID(), issueId: issue.id, body: "Keep it small please", parentId: null, userId: "human-1", createdAt: new Date().toISOString(), at: Date.now() });
    let release!: (r: ModelReply) => void;
    const held = new Promise<ModelReply>((r) => (release = r));
    srv.model.setHandler((req) => {
      if (req.userTexts.some((t) => t.includes("Use a dark background"))) {
        return req.lastRole === "tool" ? { text: "Added a dark footer." } : { toolCalls: [{ name: "write", arguments: { filePath: "footer.html", content: "<footer class=dark></footer>\n" } }] };
      }
      return held;
    });
    // Linear fails the first comment: it is retried with the same id, and appears once.
    fake.failNext("createComment", 1, { status: 500 });
    const payload = issueAssignedPayload({ issue: { id: issue.id, identifier: issue.identifier, title: issue.title, description: issue.description, teamId: issue.teamId, team: { id: "team-web", key: "WEB", name: "Web" } }, assigneeId: BOT, organizationId: fake.organizationId });
    const res = await postLinearWebhook(hook, SECRET, payload);
    expect(res).toMatchObject({ status: 200, body: "OK" });
    const run: Run = await until("the run", async () => (await srv.deckhand.store.list({ source: "linear" })).find((r) => (r.sourceRef as any).issueId === issue.id));
    expect(run.repo).toBe("web");
    expect(run.branch).toBe(issue.branchName);
    expect(run.prompt).toContain("Linear issue WEB-7: Add a footer");
    expect(run.prompt).toContain("Every page needs one");
    expect(run.prompt).toContain("Keep it small please");

    const threadId = threadCommentId(run.id);
    const thread = await until("the thread comment", () => fake.comments.find((c) => c.id === threadId), 10_000);
    expect(thread.body).toContain("On it: starting a sandbox for web.");
    expect(fake.opsNamed("createComment")[0]!.auth).toBe(fake.apiKey);
    expect(fake.opsNamed("createComment")[0]!.status).toBe(500);
    expect(fake.comments.filter((c) => c.id === threadId)).toHaveLength(1);

    // The bot's own comment coming back as a webhook is not a conversation turn.
    const own = await postLinearWebhook(hook, SECRET, commentCreatedPayload({ comment: { id: threadId, body: thread.body, issueId: issue.id, userId: BOT }, organizationId: fake.organizationId }));
    expect(own.body).toBe("Ignored");

    await until("the agent busy", async () => (await srv.deckhand.store.get(run.id))!.status === "running" && srv.model.requests.length > 0, 90_000);
    const reply = await postLinearWebhook(
      hook,
      SECRET,
      commentCreatedPayload({ comment: { id: randomUUID(), body: "Use a dark background", issueId: issue.id, parentId: threadId, userId: "human-1" }, organizationId: fake.organizationId }),
    );
    expect(reply.body).toBe("OK");
    await until("the reply delivered", async () => (await srv.deckhand.store.inputs(run.id)).find((i) => i.seq === 2)?.deliveredAt, 30_000);
    // `status` is a command here as on every surface: answered in the thread, never passed to the agent.
    const asks = await postLinearWebhook(hook, SECRET, commentCreatedPayload({ comment: { id: randomUUID(), body: "Status?", issueId: issue.id, parentId: threadId, userId: "human-1" }, organizationId: fake.organizationId }));
    expect(asks.body).toBe("OK");
    const said = await until("the status in the thread", () => fake.comments.find((c) => c.parentId === threadId && /^The run is running: /.test(c.body)), 10_000);
    expect(said.body).toContain(srv.deckhand.service.runPageUrl(run));
    expect((await srv.deckhand.store.inputs(run.id)).map((i) => i.text)).not.toContain("Status?");
    release({ text: "Looking." });
    const done = await srv.waitFor(run.id, ["idle", "failed"], 120_000);
    expect(done.status, done.reason).toBe("idle");
    expect(done.result.filesChanged).toEqual([{ path: "footer.html", additions: 1, deletions: 0 }]);

    const answer = await until("the answer in the thread", () => fake.comments.find((c) => c.parentId === threadId && c.body.includes("Added a dark footer.")), 30_000);
    expect(answer.body).toContain("`footer.html` (+1 −0)");
    expect(fake.issues.get(issue.id)!.stateId).toBe(fake.stateOfType("team-web", "started")!.id);
    expect([...fake.attachments.values()].filter((a) => a.issueId === issue.id)).toHaveLength(1);
    // No agent-session calls on the classic path.
    expect(fake.opsNamed("createAgentActivity")).toHaveLength(0);
  });

  it("the agent's questions: a reply in the thread lists the options; a reply answers it; one answered elsewhere gets a note saying who", async () => {
    const q1 = "Which cache should I tune?";
    const q2 = "Which region?";
    srv.model.setHandler((req): ModelReply => {
      const n = req.toolResults.length;
      if (n === 0) return { toolCalls: [{ name: "question", arguments: { questions: [{ question: q1, header: "Cache", options: [{ label: "lru", description: "the LRU cache" }, { label: "ttl", description: "the TTL cache" }] }] } }] };
      if (n === 1) return { toolCalls: [{ name: "question", arguments: { questions: [{ question: q2, header: "Region", options: [{ label: "eu", description: "" }, { label: "us", description: "" }] }] } }] };
      return { text: "Nothing to change." };
    });
    const issue = fake.addIssue({ id: "issue-web-8", identifier: "WEB-8", title: "Tune the cache", description: "It is slow", teamId: "team-web" });
    const payload = issueAssignedPayload({ issue: { id: issue.id, identifier: issue.identifier, title: issue.title, description: issue.description, teamId: issue.teamId, team: { id: "team-web", key: "WEB", name: "Web" } }, assigneeId: BOT, organizationId: fake.organizationId });
    expect((await postLinearWebhook(hook, SECRET, payload)).status).toBe(200);
    const run: Run = await until("the run", async () => (await srv.deckhand.store.list({ source: "linear" })).find((r) => (r.sourceRef as any).issueId === issue.id));
    const threadId = threadCommentId(run.id);
    const inThread = (pred: (body: string) => boolean) => fake.comments.filter((c) => c.issueId === issue.id && c.parentId === threadId && pred(c.body));

    // The question: a reply in the run's thread, the agent's words quoted, the options and how to answer listed.
    const ask = await until("the question in the thread", () => inThread((b) => b.includes(q1))[0], 120_000);
    expect(ask.body).toContain("**The agent's question**");
    expect(ask.body).toContain("> - ttl — the TTL cache");
    expect(ask.body).toContain("Reply in this thread with one of the options (for example `lru`) or in your own words.");
    // A reply in the thread answers it (not a follow-up), and is acknowledged there.
    const reply = await postLinearWebhook(hook, SECRET, commentCreatedPayload({ comment: { id: randomUUID(), body: "TTL", issueId: issue.id, parentId: threadId, userId: "human-1" }, organizationId: fake.organizationId }));
    expect(reply.body).toBe("OK");
    await until("the acknowledgement", () => inThread((b) => b === "Got your answer; passing it to the agent.")[0], 30_000);

    // The second question is answered from the API: the thread says who answered, and what.
    await until("the second question", () => inThread((b) => b.includes(q2))[0], 120_000);
    const answered = await srv.api("POST", `/api/runs/${run.id}/answers`, { answer: "eu", author: "ann" });
    expect(answered.status, JSON.stringify(answered.body)).toBe(202);
    const done = await srv.waitFor(run.id, ["idle", "failed"], 120_000);
    expect(done.status, done.reason).toBe("idle");
    const note = await until("the note", () => inThread((b) => b.startsWith("Answered by"))[0], 30_000);
    expect(note.body).toBe(`Answered by ann on the API: eu\n\n(The agent asked: ${q2})`);
    // The first one was answered here: no note for it (the reply is in the thread already).
    expect(inThread((b) => b.startsWith("Answered") && b.includes(q1))).toHaveLength(0);
    const results = srv.model.requests.flatMap((r) => r.toolResults.map((t) => t.content));
    expect(results.some((t) => t.includes(`"${q1}"="ttl"`))).toBe(true);
    expect(results.some((t) => t.includes(`"${q2}"="eu"`))).toBe(true);
    expect((await srv.deckhand.store.inputs(run.id)).map((i) => [i.kind, i.source])).toEqual([["prompt", "linear"], ["answer", "linear"], ["answer", "api"]]);
    await until("the answer in the thread", () => inThread((b) => b.includes("Nothing to change."))[0], 30_000);
  }, 240_000);
});
