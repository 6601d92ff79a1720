/**
 * LINEAR_ALLOWED_ORGANIZATIONS through the real webhook door (signed payloads, the fake Linear API): a delegation
 * or a prompt from a workspace not on the list gets one error activity saying why and whom to ask; no run starts,
 * none is steered or stopped. A workspace on the list works as before.
 */
import { randomUUID } from "node:crypto";
import { count } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runs } from "../../src/db/schema.ts";
import { linearRefusal } from "../../src/integrations/linear/allowlist.ts";
import { mountLinear, type LinearMount } from "../../src/integrations/linear/index.ts";
import { agentSessionCreatedPayload, agentSessionPromptedPayload, postLinearWebhook, startFakeLinear, type FakeLinear } from "../fakes/linear.ts";
import { makeRepo, postgresAvailable, startTestServer, type TestServer } from "../helpers/harness.ts";

const database = (await postgresAvailable()) ? "postgres" : "pglite";
const SECRET = "linear-webhook-secret-allowlist";
const TEAM = { id: "team-eng", key: "ENG", name: "Engineering" };

describe("Linear organisation allowlist (pure)", () => {
  it("empty allows every workspace; otherwise the id or url key must be listed", () => {
    expect(linearRefusal({ id: "org-1" }, [])).toBeNull();
    expect(linearRefusal({ id: "org-1" }, ["org-1"])).toBeNull();
    expect(linearRefusal({ id: "org-2", urlKey: "acme" }, ["acme"])).toBeNull();
    expect(linearRefusal({ id: "org-2" }, ["org-1"])).toMatch(/LINEAR_ALLOWED_ORGANIZATIONS/);
    expect(linearRefusal({ id: null }, ["org-1"])).toMatch(/LINEAR_ALLOWED_ORGANIZATIONS/);
  });
});

describe(`Linear organisation allowlist end to end (${database})`, () => {
  let fake: FakeLinear;
  let srv: TestServer;
  let linear: LinearMount;
  const runCount = async () => Number((await srv.deckhand.database.db.select({ n: count() }).from(runs))[0]!.n);

  beforeAll(async () => {
    fake = await startFakeLinear();
    fake.addTeam(TEAM);
    srv = await startTestServer({
      database,
      noReconciler: true,
      repos: { api: makeRepo().bare },
      env: { LINEAR_WEBHOOK_SECRET: SECRET, LINEAR_ACCESS_TOKEN: fake.token, LINEAR_API_URL: fake.apiUrl, LINEAR_TEAM_REPOS: "ENG=api", LINEAR_ALLOWED_ORGANIZATIONS: "some-other-org" },
      mount: async (d) => void (linear = (await mountLinear(d))!),
    });
  }, 240_000);
  afterAll(async () => {
    await srv?.close();
    await fake?.close();
  });

  it("a delegation from a workspace not on the list: one error activity saying why, no run; a prompt likewise", async () => {
    const issue = fake.addIssue({ id: `issue-${randomUUID().slice(0, 6)}`, identifier: "ENG-1", title: "Add a changelog", description: "", teamId: TEAM.id });
    const sessionId = randomUUID();
    fake.addSession({ id: sessionId, issueId: issue.id });
    const res = await postLinearWebhook(
      `${srv.url}/linear/webhook`,
      SECRET,
      agentSessionCreatedPayload({ sessionId, issue: { id: issue.id, identifier: issue.identifier, title: issue.title, description: issue.description, teamId: issue.teamId }, appUserId: fake.appUserId, organizationId: fake.organizationId }),
    );
    expect(res.status).toBe(200);
    const op = await fake.waitFor((o) => o.operation === "createAgentActivity" && o.variables.input.agentSessionId === sessionId, 10_000);
    expect(op.variables.input.content.type).toBe("error");
    expect(op.variables.input.content.body).toMatch(/does not take work from this Linear workspace.*LINEAR_ALLOWED_ORGANIZATIONS/);

    const prompted = await postLinearWebhook(`${srv.url}/linear/webhook`, SECRET, agentSessionPromptedPayload({ sessionId, issueId: issue.id, body: "please do it anyway", appUserId: fake.appUserId, organizationId: fake.organizationId }));
    expect(prompted.status).toBe(200);
    await linear.settled();
    await new Promise((r) => setTimeout(r, 500));
    expect(await runCount()).toBe(0);
    const activities = fake.ops.filter((o) => o.operation === "createAgentActivity" && o.variables.input.agentSessionId === sessionId);
    expect(activities.map((a) => a.variables.input.content.type)).toEqual(["error", "error"]);
  });
});
