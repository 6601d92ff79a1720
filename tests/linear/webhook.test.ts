/**
 * The Linear webhook door and the OAuth install, against the real server, the real @linear/sdk and the fake
 * Linear API: what is accepted, what is refused, what is a duplicate, and which workspace token is used.
 * No agent runs here (a team without a repo mapping gets the "which repo?" question instead).
 */
import { randomUUID } from "node:crypto";
import { count, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deliveries, installations, notifications, runs } from "../../src/db/schema.ts";
import { mountLinear, type LinearMount } from "../../src/integrations/linear/index.ts";
import { agentSessionCreatedPayload, agentSessionPromptedPayload, commentCreatedPayload, postLinearWebhook, startFakeLinear, type FakeLinear } from "../fakes/linear.ts";
import { makeRepo, startTestServer, type TestServer } from "../helpers/harness.ts";

const SECRET = "linear-webhook-secret-for-tests";

describe("POST /linear/webhook and the OAuth install", () => {
  let fake: FakeLinear;
  let srv: TestServer;
  let linear: LinearMount;
  let hook: string;
  const issue = { id: "issue-ops-1", identifier: "OPS-1", title: "Rotate the logs", description: "They fill the disk", teamId: "team-ops" };

  beforeAll(async () => {
    fake = await startFakeLinear();
    fake.addTeam({ id: "team-ops", key: "OPS", name: "Operations" });
    fake.addIssue(issue);
    srv = await startTestServer({
      repos: { api: makeRepo().bare, web: makeRepo().bare },
      env: {
        LINEAR_WEBHOOK_SECRET: SECRET,
        LINEAR_API_URL: fake.apiUrl,
        LINEAR_CLIENT_ID: "client-id",
        LINEAR_CLIENT_SECRET: "client-secret-0123456789",
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

  const db = () => srv.deckhand.database.db;
  const counts = async () => ({
    deliveries: Number((await db().select({ n: count() }).from(deliveries))[0]!.n),
    runs: Number((await db().select({ n: count() }).from(runs))[0]!.n),
    notifications: Number((await db().select({ n: count() }).from(notifications))[0]!.n),
    ops: fake.ops.length,
  });
  const created = (sessionId: string, ts?: number) =>
    agentSessionCreatedPayload({ sessionId, issue, appUserId: fake.appUserId, organizationId: fake.organizationId, webhookTimestamp: ts });

  it("installs a workspace: install redirects to Linear with actor=app; the callback stores the token and app user", async () => {
    // Only a signed-in dashboard session may install: anyone else is sent to the sign-in page.
    const anonymous = await fetch(`${srv.url}/linear/oauth/install`, { redirect: "manual" });
    expect(anonymous.status).toBe(303);
    expect(anonymous.headers.get("location")).toBe("/login?next=%2Flinear%2Foauth%2Finstall");
    const signIn = await fetch(`${srv.url}/login`, {
      method: "POST",
      redirect: "manual",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: srv.deckhand.apiToken, next: "/linear/oauth/install" }).toString(),
    });
    expect(signIn.status).toBe(303);
    const cookie = signIn.headers.get("set-cookie")!.split(";")[0]!;
    const start = await fetch(`${srv.url}/linear/oauth/install`, { redirect: "manual", headers: { cookie } });
    expect(start.status).toBe(302);
    const to = new URL(start.headers.get("location")!);
    expect(to.origin + to.pathname).toBe("https://linear.app/oauth/authorize");
    expect(Object.fromEntries(to.searchParams)).toMatchObject({
      client_id: "client-id",
      actor: "app",
      response_type: "code",
      scope: "read,write,app:assignable,app:mentionable",
      redirect_uri: `${srv.deckhand.config.PUBLIC_URL}/linear/oauth/callback`,
    });
    const state = to.searchParams.get("state")!;

    // A forged state is refused before any token exchange.
    const forged = await fetch(`${srv.url}/linear/oauth/callback?code=${fake.oauthCode()}&state=1.abc`);
    expect(forged.status).toBe(400);
    expect(fake.tokenExchanges).toHaveLength(0);

    const cb = await fetch(`${srv.url}/linear/oauth/callback?code=${fake.oauthCode()}&state=${encodeURIComponent(state)}`);
    expect(cb.status).toBe(200);
    expect(await cb.text()).toContain("Deckhand is installed in Fake Org");
    expect(fake.tokenExchanges.at(-1)).toMatchObject({ clientId: "client-id", ok: true });
    const [row] = await db().select().from(installations).where(eq(installations.workspaceId, fake.organizationId));
    expect(row).toMatchObject({ surface: "linear", accessToken: fake.token, appUserId: fake.appUserId });

    // A used code is refused by Linear: a clear error page, nothing else stored.
    const reused = await fetch(`${srv.url}/linear/oauth/callback?code=${fake.tokenExchanges.at(-1)!.code}&state=${encodeURIComponent(state)}`);
    expect(reused.status).toBe(502);
  });

  it("a good delivery is answered at once; the workspace's installed token is used; no repo → elicitation listing the repos", async () => {
    // The stored token is about to expire: it is refreshed (with the stored refresh token) before use.
    const [inst] = await db().select().from(installations).where(eq(installations.workspaceId, fake.organizationId));
    expect(inst!.data).toMatchObject({ refreshToken: expect.stringMatching(/^rt_/), expiresAt: expect.any(String) });
    await db().update(installations).set({ data: { ...inst!.data, expiresAt: new Date(Date.now() - 1000).toISOString() } }).where(eq(installations.workspaceId, fake.organizationId));
    const before = await counts();
    const sessionId = randomUUID();
    fake.addSession({ id: sessionId, issueId: issue.id });
    const r = await postLinearWebhook(hook, SECRET, created(sessionId));
    expect(r.status).toBe(200);
    expect(r.ms).toBeLessThan(5000);
    const op = await fake.waitFor((o) => o.operation === "createAgentActivity" && o.variables.input.agentSessionId === sessionId, 10_000);
    expect(op.auth).toBe(`Bearer ${fake.token}`);
    expect(op.variables.input.content).toEqual({ type: "elicitation", body: "Which repository should I work in? Reply with one of: `api`, `web` (for example `repo=api`)." });
    expect(fake.sessions.get(sessionId)!.status).toBe("awaitingInput");
    expect(fake.tokenExchanges.filter((x) => x.grant === "refresh_token").map((x) => x.ok)).toEqual([true]);
    const [refreshed] = await db().select().from(installations).where(eq(installations.workspaceId, fake.organizationId));
    expect(Date.parse(String(refreshed!.data.expiresAt))).toBeGreaterThan(Date.now() + 3600_000);
    expect(refreshed!.data.refreshToken).not.toBe(inst!.data.refreshToken);
    const after = await counts();
    expect(after.runs).toBe(before.runs);
    expect(after.deliveries).toBe(before.deliveries + 2); // the delivery id and the session+action key
  });

  it("bad signature, missing signature, stale or missing timestamp, bad JSON, wrong method: refused, nothing stored, no GraphQL call", async () => {
    await linear.settled();
    await new Promise((r) => setTimeout(r, 300));
    const before = await counts();
    const sessionId = randomUUID();
    const results = {
      badSignature: await postLinearWebhook(hook, SECRET, created(sessionId), { badSignature: true }),
      missingSignature: await postLinearWebhook(hook, SECRET, created(sessionId), { signature: null }),
      stale: await postLinearWebhook(hook, SECRET, created(sessionId, Date.now() - 120_000)),
      future: await postLinearWebhook(hook, SECRET, created(sessionId, Date.now() + 120_000)),
      noTimestamp: await postLinearWebhook(hook, SECRET, { ...created(sessionId), webhookTimestamp: undefined }),
      badJson: await postLinearWebhook(hook, SECRET, "{nope", {}),
      get: await postLinearWebhook(hook, SECRET, created(sessionId), { method: "GET" }),
    };
    expect(Object.fromEntries(Object.entries(results).map(([k, v]) => [k, v.status]))).toEqual({
      badSignature: 400,
      missingSignature: 400,
      stale: 400,
      future: 400,
      noTimestamp: 400,
      badJson: 400,
      get: 405,
    });
    await new Promise((r) => setTimeout(r, 1000));
    expect(await counts()).toEqual(before);
    // The server is still fine.
    expect((await fetch(`${srv.url}/healthz`)).status).toBe(200);
  });

  it("a redelivery (same linear-delivery id) and the same event under a new delivery id are ignored", async () => {
    const sessionId = randomUUID();
    fake.addSession({ id: sessionId, issueId: issue.id });
    const payload = created(sessionId);
    const first = await postLinearWebhook(hook, SECRET, payload, { deliveryId: "delivery-dup-1" });
    expect(first).toMatchObject({ status: 200, body: "OK" });
    await fake.waitFor((o) => o.operation === "createAgentActivity" && o.variables.input.agentSessionId === sessionId, 10_000);
    await linear.settled();
    await new Promise((r) => setTimeout(r, 500));
    const before = await counts();
    const again = await postLinearWebhook(hook, SECRET, payload, { deliveryId: "delivery-dup-1" });
    const sameEvent = await postLinearWebhook(hook, SECRET, { ...payload, webhookTimestamp: Date.now() }, { deliveryId: "delivery-dup-2" });
    expect([again.body, sameEvent.body]).toEqual(["Duplicate", "Duplicate"]);
    await new Promise((r) => setTimeout(r, 1000));
    expect(await counts()).toEqual(before);
    expect(fake.activities.filter((a) => a.agentSessionId === sessionId)).toHaveLength(1);
  });

  it("an unknown repo= is answered with the allowed names; a reply that names no repo asks again", async () => {
    const sessionId = randomUUID();
    fake.addSession({ id: sessionId, issueId: issue.id });
    await postLinearWebhook(
      hook,
      SECRET,
      agentSessionCreatedPayload({ sessionId, issue, comment: { id: randomUUID(), body: "@deckhand do it in repo=mobile" }, appUserId: fake.appUserId, organizationId: fake.organizationId }),
    );
    const asked = await fake.waitFor((o) => o.operation === "createAgentActivity" && o.variables.input.agentSessionId === sessionId, 10_000);
    expect(asked.variables.input.content.body).toBe("I don't know a repo called `mobile`. Reply with one of: `api`, `web` (for example `repo=api`).");
    await postLinearWebhook(hook, SECRET, agentSessionPromptedPayload({ sessionId, issueId: issue.id, body: "whichever you like", appUserId: fake.appUserId, organizationId: fake.organizationId }));
    await fake.waitFor((o) => o.operation === "createAgentActivity" && o.variables.input.agentSessionId === sessionId && o !== asked, 10_000);
    const sent = fake.activities.filter((a) => a.agentSessionId === sessionId);
    expect(sent.map((a) => a.content.type)).toEqual(["elicitation", "elicitation"]);
    expect(sent[1]!.content.body).toContain("Which repository should I work in?");
    expect(Number((await db().select({ n: count() }).from(runs))[0]!.n)).toBe(0);
  });

  it("events we don't act on are acknowledged and ignored: nothing stored", async () => {
    const before = await counts();
    const other = await postLinearWebhook(
      hook,
      SECRET,
      commentCreatedPayload({ comment: { id: randomUUID(), body: "just chatting", issueId: issue.id }, organizationId: fake.organizationId }),
    );
    const unknownType = await postLinearWebhook(hook, SECRET, { type: "Project", action: "update", webhookTimestamp: Date.now(), data: {} });
    expect([other.body, unknownType.body]).toEqual(["Ignored", "Ignored"]);
    expect(await counts()).toEqual(before);
  });
});
