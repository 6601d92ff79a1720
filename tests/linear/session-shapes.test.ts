/**
 * Real-world agent-session shapes (from other projects' payloads) through the real webhook door, the real
 * @linear/sdk and the fake Linear API. No sandbox starts (noReconciler): runs stay queued, which is what
 * "one run per issue at a time" is about; what is stored and what Linear is told is checked.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { installations, type Run } from "../../src/db/schema.ts";
import { mountLinear } from "../../src/integrations/linear/index.ts";
import { agentSessionCreatedPayload, agentSessionPromptedPayload, postLinearWebhook, startFakeLinear, type FakeLinear } from "../fakes/linear.ts";
import { makeRepo, startTestServer, type TestServer } from "../helpers/harness.ts";
import { until } from "../helpers/until.ts";
import { forceRunRow } from "../helpers/force-run-row.ts";
import { hashToken } from "../../src/runs/tokens.ts";

const SECRET = "linear-webhook-secret-for-tests";

describe("Linear agent sessions: real-world shapes", () => {
  let fake: FakeLinear;
  let srv: TestServer;
  let hook: string;
  let n = 0;
  const newIssue = () => {
    n++;
    return fake.addIssue({ id: `issue-shape-${n}-${randomUUID().slice(0, 6)}`, identifier: `OPS-${n}`, title: `Shape ${n}`, description: "d", teamId: "team-ops" });
  };

  beforeAll(async () => {
    fake = await startFakeLinear();
    fake.addTeam({ id: "team-ops", key: "OPS", name: "Operations" }); // no team mapping: DEFAULT_REPO decides
    srv = await startTestServer({
      noReconciler: true,
      repos: { api: makeRepo().bare, web: makeRepo().bare },
      env: { LINEAR_WEBHOOK_SECRET: SECRET, LINEAR_ACCESS_TOKEN: fake.token, LINEAR_API_URL: fake.apiUrl, DEFAULT_REPO: "api" },
      mount: (d) => mountLinear(d),
    });
    hook = `${srv.url}/linear/webhook`;
  });
  afterAll(async () => {
    await srv?.close();
    await fake?.close();
  });

  const ids = () => ({ appUserId: fake.appUserId, organizationId: fake.organizationId });
  const runsOf = async (sessionId: string) => (await srv.deckhand.store.list({ source: "linear" })).filter((r: Run) => (r.sourceRef as any).agentSessionId === sessionId);
  const activitiesOf = (sessionId: string) => fake.activities.filter((a) => a.agentSessionId === sessionId);
  const prompts = async (runId: string) => (await srv.deckhand.store.inputs(runId)).filter((i: any) => i.kind === "prompt").map((i: any) => i.text);

  it("a session without an issue becomes a run that reports back in the session; prompted on it steers the run", async () => {
    const sessionId = randomUUID();
    const payload = agentSessionCreatedPayload({ sessionId, issue: { id: "x", identifier: "X-1", title: "t", teamId: "team-ops" }, comment: { id: randomUUID(), body: "Tidy the logging setup" }, ...ids() });
    delete payload.agentSession.issue;
    delete payload.agentSession.issueId;
    delete payload.agentSession.comment.issueId;
    payload.promptContext = "<user>Tidy the logging setup</user>";
    expect((await postLinearWebhook(hook, SECRET, payload)).status).toBe(200);
    const [run] = await until("a run", () => runsOf(sessionId).then((r) => (r.length ? r : null)));
    expect(run!.repo).toBe("api");
    await until("the first thought", () => activitiesOf(sessionId).find((a) => a.content.type === "thought" && /Starting a sandbox for api/.test(a.content.body)));

    const res = await postLinearWebhook(hook, SECRET, agentSessionPromptedPayload({ sessionId, issueId: "", body: "and drop the debug lines", ...ids() }));
    expect(res.body).toBe("OK");
    await until("the follow-up stored", async () => (await prompts(run!.id)).includes("and drop the debug lines"));
    await until("the ack", () => activitiesOf(sessionId).find((a) => a.content.type === "thought" && /passing that to the agent/.test(a.content.body)));
  });

  it("prompted for a session never seen (its created was missed) starts a run on DEFAULT_REPO without asking", async () => {
    const issue = newIssue();
    const sessionId = randomUUID();
    const res = await postLinearWebhook(hook, SECRET, agentSessionPromptedPayload({ sessionId, issueId: issue.id, body: "Please fix the flaky test", ...ids() }));
    expect(res.body).toBe("OK");
    const [run] = await until("a run", () => runsOf(sessionId).then((r) => (r.length ? r : null)));
    expect(run!.repo).toBe("api");
    expect(run!.prompt).toContain("Please fix the flaky test");
    await new Promise((r) => setTimeout(r, 300));
    expect(activitiesOf(sessionId).filter((a) => a.content.type === "elicitation")).toEqual([]);
  });

  it("two sessions on one issue: the second joins the working run (its request is a follow-up); no second run", async () => {
    const issue = newIssue();
    const first = randomUUID();
    const second = randomUUID();
    const created = (sessionId: string, body: string) =>
      postLinearWebhook(hook, SECRET, agentSessionCreatedPayload({ sessionId, issue, comment: { id: randomUUID(), body }, ...ids() }));
    await created(first, "@deckhand fix it");
    const [run] = await until("the first run", () => runsOf(first).then((r) => (r.length ? r : null)));
    await created(second, "@deckhand also add a test");
    const said = await until("a word in the second session", () => activitiesOf(second)[0]);
    expect(said.content.type).toBe("response");
    expect(said.content.body).toContain(srv.deckhand.service.runPageUrl(run!));
    expect(await runsOf(second)).toEqual([]);
    expect((await srv.deckhand.store.list({ source: "linear" })).filter((r: Run) => (r.sourceRef as any).issueId === issue.id)).toHaveLength(1);
    expect(await prompts(run!.id)).toEqual([run!.prompt, "@deckhand also add a test"]);
  });

  it("in a session, what is said back about the agent's question and the run's reason keeps the agent's words inert (no links, no mentions)", async () => {
    const issue = newIssue();
    const sessionId = randomUUID();
    await postLinearWebhook(hook, SECRET, agentSessionCreatedPayload({ sessionId, issue, comment: { id: randomUUID(), body: "pick a cache" }, ...ids() }));
    const [run] = await until("a run", () => runsOf(sessionId).then((r) => (r.length ? r : null)));
    // Its sandbox (played over the relay's own endpoint) asks, with options the agent wrote to plant a link and a mention.
    const token = "relay-token-linear-question-0123456789";
    await forceRunRow(srv.deckhand.store.db, run!.id, { status: "running", relayTokenHash: hashToken(token), statusReason: "[see the fix](https://evil.example/fix) @everyone" });
    const events = [{ seq: 1, type: "question.asked", at: new Date().toISOString(), data: { id: "que_inert", questions: [{ question: "Which cache?", options: [{ label: "[claim](https://evil.example/x)" }, { label: "@everyone" }], custom: false }] } }];
    expect((await fetch(`${srv.url}/relay/v1/runs/${run!.id}/events`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify({ events }) })).status).toBeLessThan(300);
    await postLinearWebhook(hook, SECRET, agentSessionPromptedPayload({ sessionId, issueId: issue.id, body: "neither", ...ids() }));
    const told = await until("told", () => activitiesOf(sessionId).find((a) => /didn't answer/.test(a.content.body ?? "")));
    expect(told.content.body).toContain("claim (`https://evil.example/x`)");
    await postLinearWebhook(hook, SECRET, agentSessionPromptedPayload({ sessionId, issueId: issue.id, body: "status", ...ids() }));
    const status = await until("status", () => activitiesOf(sessionId).find((a) => /The run is running/.test(a.content.body ?? "")));
    for (const body of [told.content.body, status.content.body]) {
      expect(body).not.toMatch(/\]\(https:|(^|[^`])@everyone/);
    }
  });

  it("prompted without an activity id: two different prompts are both delivered; a redelivery is still a duplicate", async () => {
    const issue = newIssue();
    const sessionId = randomUUID();
    await postLinearWebhook(hook, SECRET, agentSessionCreatedPayload({ sessionId, issue, ...ids() }));
    const [run] = await until("a run", () => runsOf(sessionId).then((r) => (r.length ? r : null)));
    const noId = (body: string) => {
      const p = agentSessionPromptedPayload({ sessionId, issueId: issue.id, body, ...ids() });
      delete p.agentActivity.id;
      return p;
    };
    const a = noId("first note");
    const r1 = await postLinearWebhook(hook, SECRET, a, { deliveryId: "no-activity-id-1" });
    const r2 = await postLinearWebhook(hook, SECRET, noId("second note"), { deliveryId: "no-activity-id-2" });
    const again = await postLinearWebhook(hook, SECRET, a, { deliveryId: "no-activity-id-1" });
    expect([r1.body, r2.body, again.body]).toEqual(["OK", "OK", "Duplicate"]);
    await until("both notes", async () => (await prompts(run!.id)).length === 3);
    expect((await prompts(run!.id)).slice(1)).toEqual(["first note", "second note"]);
    // Each got its own acknowledgement in the session (their outbox keys differ).
    await until("two acks", () => activitiesOf(sessionId).filter((a) => /passing that to the agent/.test(a.content.body)).length === 2);
  });

  it("uninstalling the app drops the workspace's tokens and stops its runs with the reason; a forged revoke does nothing", async () => {
    const issue = newIssue();
    const sessionId = randomUUID();
    fake.addSession({ id: sessionId, issueId: issue.id });
    await postLinearWebhook(hook, SECRET, agentSessionCreatedPayload({ sessionId, issue: { id: issue.id, identifier: issue.identifier, title: issue.title, description: issue.description, teamId: issue.teamId }, ...ids() }));
    const [run] = await until("a run", async () => ((await runsOf(sessionId)).length ? await runsOf(sessionId) : null));
    const db = srv.deckhand.database.db;
    await db.insert(installations).values({ surface: "linear", workspaceId: fake.organizationId, accessToken: "lin_oauth_revoked_soon", appUserId: fake.appUserId });
    const revoke = (o: Record<string, unknown> = {}) => ({ type: "OAuthApp", action: "revoked", organizationId: fake.organizationId, oauthClientId: "client-1", webhookId: "wh-1", createdAt: new Date().toISOString(), webhookTimestamp: Date.now(), ...o });
    // Unsigned: refused, nothing dropped.
    expect((await postLinearWebhook(hook, SECRET, revoke(), { badSignature: true })).status).toBe(400);
    expect(await db.select().from(installations)).toHaveLength(1);
    expect((await srv.deckhand.store.get(run!.id))!.status).toBe("queued");

    expect((await postLinearWebhook(hook, SECRET, revoke())).status).toBe(200);
    const stopped = await until("stopped", async () => {
      const r = await srv.deckhand.store.get(run!.id);
      return r!.status === "cancelled" ? r : null;
    });
    expect(stopped.statusReason).toMatch(/uninstalled/);
    expect(await db.select().from(installations)).toHaveLength(0);
  });

  it("two `created` on one issue arriving together: one run; the other session joins it (enforced by the database)", async () => {
    const issue = newIssue();
    const a = randomUUID();
    const b = randomUUID();
    fake.addSession({ id: a, issueId: issue.id });
    fake.addSession({ id: b, issueId: issue.id });
    const created = (sessionId: string) =>
      postLinearWebhook(hook, SECRET, agentSessionCreatedPayload({ sessionId, issue: { id: issue.id, identifier: issue.identifier, title: issue.title, description: issue.description, teamId: issue.teamId }, ...ids() }));
    const [ra, rb] = await Promise.all([created(a), created(b)]);
    expect([ra.status, rb.status]).toEqual([200, 200]);
    const joined = await until("the joined session told", () => [a, b].find((s) => activitiesOf(s).some((x) => /already working on/.test(x.content?.body ?? ""))));
    const live = (await srv.deckhand.store.list({ source: "linear" })).filter((r: Run) => (r.sourceRef as any).issueId === issue.id);
    expect(live).toHaveLength(1);
    expect((live[0]!.sourceRef as any).agentSessionId).not.toBe(joined);
  });
});
