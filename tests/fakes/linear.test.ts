import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AuthenticationLinearError,
  GraphqlLinearError,
  InternalLinearError,
  InvalidInputLinearError,
  LinearClient,
  LinearError,
  NetworkLinearError,
  RatelimitedLinearError,
} from "@linear/sdk";
import { LinearWebhookClient, type LinearWebhookPayload } from "@linear/sdk/webhooks";
import {
  agentSessionCreatedPayload,
  agentSessionPromptedPayload,
  commentCreatedPayload,
  issueAssignedPayload,
  postLinearWebhook,
  signLinearBody,
  startFakeLinear,
  type FakeLinear,
} from "./linear.ts";

async function rejection(p: Promise<unknown>): Promise<any> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected a rejection");
}

describe("fake Linear API with the real LinearClient", () => {
  let fake: FakeLinear;
  let client: LinearClient;
  const TEAM = "team-eng";
  const ISSUE = "issue-42";
  const SESSION = "session-1";

  beforeAll(async () => {
    fake = await startFakeLinear();
    fake.addTeam({ id: TEAM, key: "ENG", name: "Engineering" });
    fake.addIssue({
      id: ISSUE,
      identifier: "ENG-42",
      title: "Fix the login bug",
      description: "Users cannot log in with SSO.",
      teamId: TEAM,
      labels: [{ name: "bug", color: "#ff0000" }],
    });
    fake.addSession({ id: SESSION, issueId: ISSUE });
    client = new LinearClient({ accessToken: fake.token, apiUrl: fake.apiUrl });
  });
  afterAll(async () => {
    await fake.close();
  });

  it("answers viewer with the app user, recording the op and the OAuth header", async () => {
    const me = await client.viewer;
    expect(me.id).toBe(fake.appUserId);
    expect(me.app).toBe(true);
    const op = fake.opsNamed("viewer").at(-1)!;
    expect(op.auth).toBe(`Bearer ${fake.token}`);
    expect(op.status).toBe(200);
    // An API key goes in the Authorization header as is.
    const keyed = new LinearClient({ apiKey: fake.apiKey, apiUrl: fake.apiUrl });
    expect((await keyed.viewer).id).toBe(fake.appUserId);
    expect(fake.ops.at(-1)!.auth).toBe(fake.apiKey);
    const org = await me.organization;
    expect(org.id).toBe(fake.organizationId);
  });

  it("serves issue(id) with team, state, labels, branchName and comments", async () => {
    const issue = await client.issue(ISSUE);
    expect(issue.identifier).toBe("ENG-42");
    expect(issue.title).toBe("Fix the login bug");
    expect(issue.description).toBe("Users cannot log in with SSO.");
    expect(issue.branchName).toBe("eng-42-fix-the-login-bug");
    expect(issue.url).toBe("https://linear.app/fake-org/issue/ENG-42/fix-the-login-bug");
    expect(issue.teamId).toBe(TEAM);
    expect((await issue.team)!.key).toBe("ENG");
    expect((await issue.state)!.type).toBe("unstarted");
    expect((await issue.labels()).nodes.map((l) => l.name)).toEqual(["bug"]);
    // Also by identifier, as Linear allows.
    expect((await client.issue("ENG-42")).id).toBe(ISSUE);

    const created = await client.createComment({ issueId: ISSUE, body: "On it." });
    expect(created.success).toBe(true);
    const reply = await client.createComment({ issueId: ISSUE, body: "Reply", parentId: created.commentId });
    expect(reply.commentId).toBeTruthy();
    const comments = await issue.comments();
    expect(comments.nodes.map((c) => c.body)).toEqual(["On it.", "Reply"]);
    expect(fake.comments[1].parentId).toBe(created.commentId);
    // The operation names the SDK sends for relations.
    expect(fake.opsNamed("issue_comments")).toHaveLength(1);
    expect(fake.opsNamed("issue_labels")).toHaveLength(1);
    expect(fake.opsNamed("workflowState")).toHaveLength(1);

    const missing = await rejection(client.issue("nope"));
    expect(missing).toBeInstanceOf(InvalidInputLinearError);
    expect(missing.message).toContain("Entity not found: Issue");
  });

  it("createAgentActivity: thought, action, response; the same id twice makes one activity", async () => {
    const thought = await client.createAgentActivity({ agentSessionId: SESSION, content: { type: "thought", body: "Looking" }, ephemeral: true });
    expect(thought.success).toBe(true);
    expect(thought.agentActivityId).toBeTruthy();
    const action = await client.createAgentActivity({
      agentSessionId: SESSION,
      content: { type: "action", action: "Running", parameter: "npm test", result: "ok" },
    });
    expect(action.success).toBe(true);
    const id = randomUUID();
    const first = await client.createAgentActivity({ id, agentSessionId: SESSION, content: { type: "response", body: "Done" } });
    const again = await client.createAgentActivity({ id, agentSessionId: SESSION, content: { type: "response", body: "Done" } });
    expect(first.agentActivityId).toBe(id);
    expect(again.agentActivityId).toBe(id);
    expect(fake.activities.filter((a) => a.id === id)).toHaveLength(1);
    expect(fake.activities.filter((a) => a.agentSessionId === SESSION).map((a) => a.content.type)).toEqual(["thought", "action", "response"]);
    expect(fake.activities[0].ephemeral).toBe(true);
    expect(fake.sessions.get(SESSION)!.status).toBe("complete");
    const ops = fake.opsNamed("createAgentActivity");
    expect(ops).toHaveLength(4);
    expect(ops[2].variables.input).toMatchObject({ id, agentSessionId: SESSION, content: { type: "response", body: "Done" } });

    // The activity model parses the content union.
    const read = await client.agentActivity(id);
    expect(read.content).toMatchObject({ __typename: "AgentActivityResponseContent", type: "response", body: "Done" });
    const listed = await (await client.agentSession(SESSION)).activities();
    expect(listed.nodes).toHaveLength(3);

    // Linear's rules the fake enforces.
    const bad = await rejection(client.createAgentActivity({ agentSessionId: SESSION, content: { type: "response", body: "x" }, ephemeral: true }));
    expect(bad).toBeInstanceOf(InvalidInputLinearError);
  });

  it("updateAgentSession sets the plan and adds external URLs; agentSession reads them back", async () => {
    const plan = [
      { content: "Reproduce", status: "completed" },
      { content: "Fix", status: "inProgress" },
    ];
    const res = await client.updateAgentSession(SESSION, {
      plan,
      addedExternalUrls: [{ label: "Run", url: "https://deckhand.test/runs/1" }],
      externalLink: "https://deckhand.test/runs/1",
    });
    expect(res.success).toBe(true);
    expect(res.agentSessionId).toBe(SESSION);
    await client.updateAgentSession(SESSION, { addedExternalUrls: [{ label: "PR", url: "https://github.com/o/r/pull/1" }] });
    const s = fake.sessions.get(SESSION)!;
    expect(s.plan).toEqual(plan);
    expect(s.externalUrls.map((u) => u.label)).toEqual(["Run", "PR"]);
    expect(s.externalLink).toBe("https://deckhand.test/runs/1");

    const session = await client.agentSession(SESSION);
    expect(session.plan).toEqual(plan); // `JSON` scalar: sent as a string, parsed by the SDK
    expect(session.externalLinks.map((l) => l.url)).toEqual(["https://deckhand.test/runs/1", "https://github.com/o/r/pull/1"]);
    expect(session.externalUrls).toEqual(s.externalUrls);
    expect(session.externalLink).toBe("https://deckhand.test/runs/1");
    expect(session.issueId).toBe(ISSUE);

    const badPlan = await rejection(client.updateAgentSession(SESSION, { plan: [{ content: "x", status: "doing" }] as any }));
    expect(badPlan).toBeInstanceOf(InvalidInputLinearError);
  });

  it("team states filtered to started, then updateIssue moves the issue", async () => {
    const team = await client.team(TEAM);
    const all = await team.states();
    expect(new Set(all.nodes.map((s) => s.type))).toEqual(new Set(["backlog", "unstarted", "started", "completed", "canceled"]));
    const started = await team.states({ filter: { type: { eq: "started" } } });
    expect(started.nodes.map((s) => s.name)).toEqual(["In Review", "In Progress"]); // creation order, not position
    const lowest = [...started.nodes].sort((a, b) => a.position - b.position)[0];
    expect(lowest.name).toBe("In Progress");
    expect(fake.opsNamed("team_states").at(-1)!.variables).toMatchObject({ id: TEAM, filter: { type: { eq: "started" } } });

    const res = await client.updateIssue(ISSUE, { stateId: lowest.id });
    expect(res.success).toBe(true);
    expect(fake.issues.get(ISSUE)!.stateId).toBe(lowest.id);
    expect(fake.opsNamed("updateIssue")[0].variables).toEqual({ id: ISSUE, input: { stateId: lowest.id } });
    expect((await (await client.issue(ISSUE)).state)!.name).toBe("In Progress");
    expect(fake.stateOfType(TEAM, "started")!.id).toBe(lowest.id);

    const wrong = await rejection(client.updateIssue(ISSUE, { stateId: "not-a-state" }));
    expect(wrong).toBeInstanceOf(InvalidInputLinearError);
  });

  it("createAttachment upserts on the same url; attachmentLinkURL too", async () => {
    const a = await client.createAttachment({ issueId: ISSUE, title: "PR #1", url: "https://github.com/o/r/pull/1", subtitle: "open" });
    const b = await client.createAttachment({ issueId: ISSUE, title: "PR #1", url: "https://github.com/o/r/pull/1", subtitle: "merged" });
    expect(a.attachmentId).toBe(b.attachmentId);
    const c = await client.attachmentLinkURL(ISSUE, "https://github.com/o/r/pull/1", { title: "PR #1 (link)" });
    expect(c.attachmentId).toBe(a.attachmentId);
    expect(fake.attachments.size).toBe(1);
    const only = [...fake.attachments.values()][0];
    expect(only).toMatchObject({ subtitle: "merged", title: "PR #1 (link)", writes: 3 });
    await client.attachmentLinkURL(ISSUE, "https://deckhand.test/runs/1", { title: "Run" });
    expect(fake.attachments.size).toBe(2);
  });

  it("agentSessionCreateOnIssue opens a session", async () => {
    const res = await client.agentSessionCreateOnIssue({ issueId: ISSUE, externalUrls: [{ label: "Run", url: "https://deckhand.test/r/2" }] });
    expect(res.success).toBe(true);
    const s = fake.sessions.get(res.agentSessionId!)!;
    expect(s).toMatchObject({ issueId: ISSUE, status: "pending", externalUrls: [{ label: "Run", url: "https://deckhand.test/r/2" }] });
  });

  it("a bad token is an AuthenticationLinearError", async () => {
    const bad = new LinearClient({ accessToken: "wrong", apiUrl: fake.apiUrl });
    const err = await rejection(bad.viewer);
    expect(err).toBeInstanceOf(AuthenticationLinearError);
    expect(err).toBeInstanceOf(LinearError);
    expect(err.constructor.name).toBe("AuthenticationLinearError");
    expect(err.type).toBe("AuthenticationError");
    expect(err.status).toBe(401);
    expect(err.errors[0].message).toBe("You need to authenticate to access this operation.");
    expect(fake.ops.at(-1)).toMatchObject({ operation: "viewer", auth: "Bearer wrong", status: 401 });
  });

  it("failNext: 500 then success; 502; rate limited; GraphQL error", async () => {
    fake.failNext("createAgentActivity", 1, { status: 500 });
    const e500 = await rejection(client.createAgentActivity({ agentSessionId: SESSION, content: { type: "thought", body: "a" } }));
    expect(e500).toBeInstanceOf(InternalLinearError);
    expect(e500.status).toBe(500);
    const ok = await client.createAgentActivity({ agentSessionId: SESSION, content: { type: "thought", body: "a" } });
    expect(ok.success).toBe(true);

    fake.failNext("*", 1, { status: 502 });
    expect(await rejection(client.viewer)).toBeInstanceOf(NetworkLinearError);

    fake.failNext("updateAgentSession", 1, { rateLimited: true, retryAfterSec: 2 });
    const limited = await rejection(client.updateAgentSession(SESSION, { externalLink: "x" }));
    expect(limited).toBeInstanceOf(RatelimitedLinearError);
    expect(limited.status).toBe(400);
    expect(limited.retryAfter).toBe(2);
    expect(limited.requestsRemaining).toBe(0);
    expect(limited.requestsLimit).toBe(5000);

    fake.failNext("createComment", 1, { graphqlError: "Comment body too long" });
    const gql = await rejection(client.createComment({ issueId: ISSUE, body: "x" }));
    expect(gql).toBeInstanceOf(InvalidInputLinearError);
    expect(gql.message).toContain("Comment body too long");
    expect(fake.comments.some((c) => c.body === "x")).toBe(false);
  });

  it("unknown SDK operations get a GraphQL error; custom anonymous queries work", async () => {
    const err = await rejection(client.projects());
    expect(err).toBeInstanceOf(GraphqlLinearError);
    expect(err.message).toContain('does not implement the SDK operation "projects"');
    const raw = await client.client.rawRequest<{ viewer: { id: string } }, Record<string, never>>("query { viewer { id } }");
    expect(raw.data?.viewer.id).toBe(fake.appUserId);
    const unknownField = await rejection(client.client.rawRequest("query { nope { id } }"));
    expect(unknownField).toBeInstanceOf(GraphqlLinearError);
  });

  it("waitFor resolves on a past or a future op", async () => {
    const pending = fake.waitFor((o) => o.operation === "createAgentActivity" && o.variables.input.content.body === "later", 2000);
    await client.createAgentActivity({ agentSessionId: SESSION, content: { type: "thought", body: "later" } });
    expect((await pending).variables.input.agentSessionId).toBe(SESSION);
    await expect(fake.waitFor((o) => o.operation === "never", 50)).rejects.toThrow(/no matching operation/);
  });
});

describe("signed webhooks with the real LinearWebhookClient", () => {
  const secret = "whsec_test";
  const wh = new LinearWebhookClient(secret);
  const appUserId = randomUUID();
  const organizationId = randomUUID();
  const issue = { id: "issue-1", identifier: "ENG-1", title: "Add dark mode", description: "Please", teamId: "team-1" };

  it("a signed created payload verifies and parses", () => {
    const payload = agentSessionCreatedPayload({
      sessionId: "s-1",
      issue,
      comment: { id: "c-1", body: "@deckhand please do it" },
      appUserId,
      organizationId,
    });
    const raw = JSON.stringify(payload);
    const sig = signLinearBody(secret, raw);
    expect(wh.verify(Buffer.from(raw), sig)).toBe(true);
    const parsed = wh.parseData(Buffer.from(raw), sig) as any;
    expect(parsed.type).toBe("AgentSessionEvent");
    expect(parsed.action).toBe("created");
    expect(parsed.agentSession.issue).toMatchObject({ identifier: "ENG-1", team: { key: "ENG" } });
    expect(parsed.agentSession.comment.body).toBe("@deckhand please do it");
    expect(parsed.promptContext).toContain('<issue identifier="ENG-1">');
  });

  it("prompted carries the text in agentActivity.content.body and an optional stop signal", () => {
    const payload = agentSessionPromptedPayload({ sessionId: "s-1", issueId: "issue-1", body: "also add tests", appUserId, organizationId, signal: "stop" });
    const raw = JSON.stringify(payload);
    const parsed = wh.parseData(Buffer.from(raw), signLinearBody(secret, raw)) as any;
    expect(parsed.agentActivity.content).toEqual({ type: "prompt", body: "also add tests" });
    expect(parsed.agentActivity.signal).toBe("stop");
  });

  it("a bad signature throws; a 2-minute-old webhookTimestamp throws; a missing one throws", () => {
    const raw = JSON.stringify(agentSessionPromptedPayload({ sessionId: "s", issueId: "i", body: "b", appUserId, organizationId }));
    expect(() => wh.verify(Buffer.from(raw), signLinearBody("other", raw))).toThrow("Invalid webhook signature");
    expect(() => wh.verify(Buffer.from(raw), "short")).toThrow("Invalid webhook signature");
    const stale = JSON.stringify(
      agentSessionPromptedPayload({ sessionId: "s", issueId: "i", body: "b", appUserId, organizationId, webhookTimestamp: Date.now() - 120_000 }),
    );
    expect(() => wh.verify(Buffer.from(stale), signLinearBody(secret, stale))).toThrow("Invalid webhook timestamp");
    expect(() => wh.parseData(Buffer.from(stale), signLinearBody(secret, stale))).toThrow("Invalid webhook timestamp");
    const noTs = JSON.stringify({ type: "Issue", action: "update" });
    expect(() => wh.verify(Buffer.from(noTs), signLinearBody(secret, noTs))).toThrow("Missing webhook timestamp");
  });

  it("classic Issue assignment and Comment create payloads verify", () => {
    for (const payload of [
      issueAssignedPayload({ issue, assigneeId: appUserId, organizationId }),
      commentCreatedPayload({ comment: { id: "c-2", body: "hi", issueId: "issue-1" }, issue, organizationId }),
    ]) {
      const raw = JSON.stringify(payload);
      expect(wh.verify(Buffer.from(raw), signLinearBody(secret, raw))).toBe(true);
    }
    const assigned = issueAssignedPayload({ issue, assigneeId: appUserId, organizationId });
    expect(assigned).toMatchObject({ type: "Issue", action: "update", data: { assigneeId: appUserId }, updatedFrom: { assigneeId: null } });
    const delegated = issueAssignedPayload({ issue, assigneeId: appUserId, organizationId, field: "delegate" });
    expect(delegated).toMatchObject({ data: { delegateId: appUserId }, updatedFrom: { delegateId: null } });
    const comment = commentCreatedPayload({ comment: { id: "c-2", body: "hi", issueId: "issue-1", parentId: "c-1" }, organizationId });
    expect(comment).toMatchObject({ type: "Comment", action: "create", data: { body: "hi", issueId: "issue-1", parentId: "c-1", botActor: null } });
  });

  describe("createHandler() mounted in a plain Node http server", () => {
    let server: Server;
    let url: string;
    const received: LinearWebhookPayload[] = [];
    const headersSeen: Record<string, unknown>[] = [];
    let mode: "ok" | "throw" | "slow" = "ok";

    beforeAll(async () => {
      const handler = wh.createHandler({ maxBodyBytes: 64 * 1024 });
      handler.on("AgentSessionEvent", async (p) => {
        if (mode === "throw") throw new Error("listener failed");
        if (mode === "slow") await new Promise((r) => setTimeout(r, 300));
        received.push(p);
      });
      server = createServer((req, res) => {
        headersSeen.push({ ...req.headers });
        void handler(req, res);
      });
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/linear`;
    });
    afterAll(async () => {
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      });
    });

    const fresh = () => agentSessionPromptedPayload({ sessionId: "s-h", issueId: "i", body: "hello", appUserId, organizationId });

    it("200 for a good delivery, after the listeners ran; headers as Linear sends them", async () => {
      mode = "ok";
      const r = await postLinearWebhook(url, secret, fresh(), { deliveryId: "delivery-1" });
      expect(r).toMatchObject({ status: 200, body: "OK" });
      expect((received.at(-1) as any).agentActivity.content.body).toBe("hello");
      expect(headersSeen.at(-1)).toMatchObject({
        "linear-delivery": "delivery-1",
        "linear-event": "AgentSessionEvent",
        "user-agent": "Linear-Webhook",
        "content-type": "application/json; charset=utf-8",
      });
      mode = "slow";
      const slow = await postLinearWebhook(url, secret, fresh());
      expect(slow.status).toBe(200);
      expect(slow.ms).toBeGreaterThanOrEqual(290); // the handler awaits listeners before answering
    });

    it("answers each bad case with its status", async () => {
      mode = "ok";
      const before = received.length;
      const statuses = {
        get: await postLinearWebhook(url, secret, fresh(), { method: "GET" }),
        missingSignature: await postLinearWebhook(url, secret, fresh(), { signature: null }),
        badSignature: await postLinearWebhook(url, secret, fresh(), { badSignature: true }),
        stale: await postLinearWebhook(url, secret, fresh(), { timestampMs: Date.now() - 120_000 }),
        invalidJson: await postLinearWebhook(url, secret, "{not json", {}),
        tooLarge: await postLinearWebhook(url, secret, { ...fresh(), pad: "x".repeat(70 * 1024) }),
      };
      expect(Object.fromEntries(Object.entries(statuses).map(([k, v]) => [k, `${v.status} ${v.body}`]))).toEqual({
        get: "405 Method not allowed",
        missingSignature: "400 Missing webhook signature",
        badSignature: "400 Invalid webhook",
        stale: "400 Invalid webhook",
        invalidJson: "400 Invalid webhook",
        tooLarge: "413 Payload too large",
      });
      expect(received.length).toBe(before);
      mode = "throw";
      const thrown = await postLinearWebhook(url, secret, fresh());
      expect(`${thrown.status} ${thrown.body}`).toBe("500 Internal server error");
      // An event type with no listener is still a 200.
      mode = "ok";
      const other = await postLinearWebhook(url, secret, commentCreatedPayload({ comment: { id: "c", body: "b", issueId: "i" }, organizationId }));
      expect(other.status).toBe(200);
    });
  });
});
