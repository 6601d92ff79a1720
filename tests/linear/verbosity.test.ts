/**
 * LINEAR_VERBOSITY=quiet, end to end: a delegated issue's run (real webhook, real @linear/sdk against the fake
 * Linear, a real sandbox and OpenCode driven by the scripted model) shows only the start, the agent's question and
 * the result; what `normal` would have sent for the same run is more. A question answered elsewhere (the CLI) gets a
 * note in the session saying who answered: Linear cannot edit the elicitation.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Run } from "../../src/db/schema.ts";
import { readDigest } from "../../src/events/digest-store.ts";
import { mountLinear } from "../../src/integrations/linear/index.ts";
import { planLinearMessages } from "../../src/integrations/linear/plan-messages.ts";
import { answerSources } from "../../src/runs/answers.ts";
import { runView } from "../../src/runs/run-view.ts";
import { agentSessionCreatedPayload, postLinearWebhook, startFakeLinear, type FakeLinear } from "../fakes/linear.ts";
import type { ModelReply } from "../fakes/model-server.ts";
import { makeRepo, startTestServer, type TestServer } from "../helpers/harness.ts";
import { until } from "../helpers/until.ts";

const SECRET = "linear-webhook-secret-for-tests";
const TEAM = { id: "team-eng", key: "ENG", name: "Engineering" };

describe("LINEAR_VERBOSITY=quiet", () => {
  let fake: FakeLinear;
  let srv: TestServer;
  let hook: string;

  beforeAll(async () => {
    fake = await startFakeLinear();
    fake.addTeam(TEAM);
    srv = await startTestServer({
      repos: { api: makeRepo({ "README.md": "# api\n", "src/app.ts": "export const x = 1;\n" }).bare },
      env: { LINEAR_WEBHOOK_SECRET: SECRET, LINEAR_ACCESS_TOKEN: fake.token, LINEAR_API_URL: fake.apiUrl, LINEAR_TEAM_REPOS: "ENG=api", LINEAR_VERBOSITY: "quiet" },
      mount: (d) => mountLinear(d),
    });
    hook = `${srv.url}/linear/webhook`;
  });
  afterAll(async () => {
    await srv?.close();
    await fake?.close();
  });

  it("the session shows the start, the question, who answered it elsewhere and the response; normal would have sent more for the same run", async () => {
    const question = "Which value should x get?";
    srv.model.setHandler((req): ModelReply => {
      const n = req.toolResults.length;
      if (n === 0) return { toolCalls: [{ name: "read", arguments: { filePath: "src/app.ts" } }] };
      if (n === 1) return { toolCalls: [{ name: "question", arguments: { questions: [{ question, header: "Value", options: [{ label: "2", description: "two" }, { label: "3", description: "three" }] }] } }] };
      if (n === 2) return { toolCalls: [{ name: "edit", arguments: { filePath: "src/app.ts", oldString: "x = 1", newString: "x = 3" } }] };
      if (n === 3) return { toolCalls: [{ name: "bash", arguments: { command: "echo checks passed", description: "Run the checks" } }] };
      return { text: "Set x to 3." };
    });
    const issue = fake.addIssue({ id: `issue-quiet-${randomUUID().slice(0, 6)}`, identifier: "ENG-9", title: "Change x", description: "x is wrong", teamId: TEAM.id });
    const sessionId = randomUUID();
    fake.addSession({ id: sessionId, issueId: issue.id });
    const payload = agentSessionCreatedPayload({ sessionId, issue: { id: issue.id, identifier: issue.identifier, title: issue.title, description: issue.description, teamId: issue.teamId }, appUserId: fake.appUserId, organizationId: fake.organizationId });
    expect((await postLinearWebhook(hook, SECRET, payload)).status).toBe(200);
    const activities = () => fake.activities.filter((a) => a.agentSessionId === sessionId);
    const run0: Run = await until("the run", async () => (await srv.deckhand.store.list({ source: "linear" })).find((r) => (r.sourceRef as any).agentSessionId === sessionId));

    // The question reaches a quiet session; it is answered from the CLI (as `deckhand answer` does).
    await until("the question", () => activities().find((a) => a.content.type === "elicitation" && a.content.body.includes(question)), 120_000);
    const answered = await srv.api("POST", `/api/runs/${run0.id}/answers`, { answer: "3", author: "ann", source: "cli" });
    expect(answered.status, JSON.stringify(answered.body)).toBe(202);
    const note = await until("the note that it was answered", () => activities().find((a) => a.content.type === "thought" && a.content.body.startsWith("Answered by ann")), 60_000);
    expect(note.content.body).toBe(`Answered by ann on the CLI: 3\n\n(The agent asked: ${question})`);

    const run = await srv.waitFor(run0.id, ["idle", "failed"], 120_000);
    expect(run.status, run.reason).toBe("idle");
    await until("the response", () => activities().find((a) => a.content.type === "response"), 30_000);
    // Quiet: no actions, no phase thoughts; only the start, the question, its note and the result.
    expect(activities().map((a) => a.content.type)).toEqual(["thought", "elicitation", "thought", "response"]);
    expect(activities()[0]!.content.body).toBe("Starting a sandbox for api…");
    expect(activities().at(-1)!.content.body).toContain("Set x to 3.");
    // The session plan and links are not activities; the run still links its page.
    expect(fake.sessions.get(sessionId)!.externalUrls.some((u) => u.url === srv.deckhand.service.runPageUrl(run0))).toBe(true);

    // The same run at `normal`: its tool calls too.
    const stored = (await srv.deckhand.store.get(run0.id))!;
    const d = await readDigest(srv.deckhand.store.db, run0.id);
    const input = { run: stored, view: runView(stored, d, srv.deckhand.service.runPageUrl(stored)), digest: d, state: await srv.deckhand.outbox.getState(run0.id, "linear"), now: new Date(), answers: await answerSources(srv.deckhand.store, run0.id) };
    const activityContents = (v: "quiet" | "normal") => planLinearMessages(input, v).messages.filter((m) => m.payload.op === "activity").map((m) => m.payload.content as any);
    const normal = activityContents("normal");
    expect(normal).toEqual(
      expect.arrayContaining([
        { type: "action", action: "Read", parameter: "src/app.ts" },
        { type: "action", action: "Edited", parameter: "src/app.ts" },
        expect.objectContaining({ type: "action", action: "Ran", parameter: "echo checks passed" }),
      ]),
    );
    // What quiet planned for the finished run is what was sent, a strict subset of normal (minus the question, over).
    const quiet = activityContents("quiet");
    expect(quiet.map((c) => c.type)).toEqual(["thought", "thought", "response"]);
    expect(normal.length).toBeGreaterThan(quiet.length + 3);
  }, 240_000);
});
