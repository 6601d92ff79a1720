/**
 * The agent asks; a person answers (real OpenCode, real sandbox, through the API): a question answered with one of
 * its options, one nobody answers (given up after QUESTION_TIMEOUT_SECONDS, the agent told to use its judgement),
 * and a command that PERMISSIONS routes to a person, rejected. One run, one OpenCode session throughout.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ModelHandler } from "../fakes/model-server.ts";
import { makeRepo, postgresAvailable, startTestServer, type TestServer } from "../helpers/harness.ts";
import { NO_ANSWER } from "../../src/events/questions.ts";

const database = (await postgresAvailable()) ? "postgres" : "pglite";

const ask = (question: string, labels: string[]) => ({
  toolCalls: [{ name: "question", arguments: { questions: [{ question, header: "Choice", options: labels.map((label) => ({ label, description: `use ${label}` })) }] } }],
});

/**
 * Turn by turn: ask which name (answered), ask a colour (nobody answers), `git push --dry-run` (approved), then
 * `git push` for real (rejected: OpenCode ends the turn on a rejection).
 */
const handler: ModelHandler = (req) => {
  const results = req.toolResults.map((t) => t.content);
  if (results.length === 0) return ask("Which name should the file have?", ["alpha", "beta"]);
  if (results.length === 1) return { toolCalls: [{ name: "write", arguments: { filePath: "answer.txt", content: `${results[0]}\n` } }] };
  if (results.length === 2) return ask("Which colour?", ["red", "blue"]);
  if (results.length === 3) return { toolCalls: [{ name: "bash", arguments: { command: "git push --dry-run origin HEAD; echo dry-run-ran", description: "try a push" } }] };
  if (results.length === 4) return { toolCalls: [{ name: "bash", arguments: { command: "git push origin HEAD:main", description: "push" } }] };
  return { text: "All done." };
};

describe("the agent's questions and approvals, answered through the API", () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer({ database, repos: { demo: makeRepo().bare }, handler, env: { QUESTION_TIMEOUT_SECONDS: "10", PERMISSIONS: "bash:git push*" } });
  });
  afterAll(async () => srv?.close());

  const waitQuestion = async (id: string, match: (q: any) => boolean) => {
    const end = Date.now() + 120_000;
    for (;;) {
      const r = await srv.api("GET", `/api/runs/${id}`);
      const q = (r.body.questions ?? []).find(match);
      if (q) return q;
      if (["idle", "failed", "cancelled"].includes(r.body.status)) throw new Error(`run ended ${r.body.status} (${r.body.reason}) before the question`);
      if (Date.now() > end) throw new Error("no question within 120 s");
      await new Promise((res) => setTimeout(res, 300));
    }
  };

  it("an answer reaches the agent in the same session; an unanswered question is given up; an approval is refused", async () => {
    const { body } = await srv.api("POST", "/api/runs", { repo: "demo", prompt: "Make a file, ask me first" });
    const q1 = await waitQuestion(body.id, (q) => q.kind === "question" && q.items[0].question.startsWith("Which name"));
    expect(q1.items[0].options.map((o: any) => o.label)).toEqual(["alpha", "beta"]);

    // Bad answers are refused with a message and change nothing.
    const wrongRun = await srv.api("POST", `/api/runs/r-nope/answers`, { answer: "beta" });
    expect(wrongRun.status).toBe(404);
    const wrongQ = await srv.api("POST", `/api/runs/${body.id}/answers`, { questionId: "que_nope", answer: "beta" });
    expect(wrongQ.status).toBe(409);
    const tooMany = await srv.api("POST", `/api/runs/${body.id}/answers`, { questionId: q1.id, answers: [["alpha", "beta"]] });
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.error).toMatch(/one answer/);

    const ok = await srv.api("POST", `/api/runs/${body.id}/answers`, { questionId: q1.id, answer: "beta", author: "ada" });
    expect(ok.status, JSON.stringify(ok.body)).toBe(202);
    expect(ok.body.answered).toBe("beta");
    const again = await srv.api("POST", `/api/runs/${body.id}/answers`, { questionId: q1.id, answer: "alpha" });
    expect(again.status).toBe(409);

    // The colour question: nobody answers; after QUESTION_TIMEOUT_SECONDS the agent is told to go on.
    await waitQuestion(body.id, (q) => q.items[0].question === "Which colour?");
    // The pushes: routed to a person by PERMISSIONS; the dry run approved, the real one rejected.
    const dry = await waitQuestion(body.id, (q) => q.kind === "permission" && q.action.includes("--dry-run"));
    expect(dry.action).toMatch(/^bash: git push --dry-run/);
    expect((await srv.api("POST", `/api/runs/${body.id}/answers`, { questionId: dry.id, answer: "Approve" })).status).toBe(202);
    const real = await waitQuestion(body.id, (q) => q.kind === "permission" && q.action.includes("HEAD:main"));
    const rej = await srv.api("POST", `/api/runs/${body.id}/answers`, { questionId: real.id, approve: false });
    expect(rej.status).toBe(202);

    const run = await srv.waitFor(body.id, ["idle", "failed"], 150_000);
    expect(run.status, run.reason).toBe("idle");
    const results = srv.model.requests.at(-1)!.toolResults.map((t) => t.content);
    expect(results[0]).toContain('"Which name should the file have?"="beta"');
    expect(results[2]).toContain(NO_ANSWER);
    expect(results[3]).toContain("dry-run-ran"); // approved: it ran
    expect(results).toHaveLength(4); // rejected: the real push never ran, and the turn ended there
    expect(run.result.filesChanged.map((f: any) => f.path)).toEqual(["answer.txt"]);
    const sessions = new Set(run.events.map((e: any) => e.data?.sessionID).filter(Boolean));
    expect(sessions.size).toBe(1);
    expect(run.questions).toEqual([]);
    expect(run.timeline.filter((t: any) => t.kind === "status").map((t: any) => t.text)).toEqual(
      expect.arrayContaining(["Answered: beta", `Answered: ${NO_ANSWER}`, "Approved", "Rejected"]),
    );
    const pushes = run.timeline.filter((t: any) => t.kind === "tool" && t.call.tool === "bash").map((t: any) => t.call.status);
    expect(pushes).toEqual(["completed", "error"]);
  }, 300_000);
});
