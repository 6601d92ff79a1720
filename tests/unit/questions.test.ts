/** The agent's questions and approval asks, without I/O: folded from OpenCode's events, answered by one set of rules. */
import { describe, expect, it } from "vitest";
import { digest } from "../../src/events/fold.ts";
import { checkAnswer, NO_ANSWER, overdueQuestions, type PendingQuestion, questionFromEvent, timeoutAnswer } from "../../src/events/questions.ts";
import { parsePermissions } from "../../src/config/config.ts";
import { permissionRules } from "../../src/sandbox/opencode-config.ts";

const at = (s: number) => new Date(1_800_000_000_000 + s * 1000).toISOString();
const asked = {
  id: "que_1",
  sessionID: "s1",
  questions: [{ question: "Which database should the cache use?", header: "Cache", options: [{ label: "Redis", description: "fast" }, { label: "Postgres", description: "one less service" }] }],
};

describe("questions in the digest", () => {
  it("a question.asked is pending until OpenCode says it was replied, with the answer in the timeline", () => {
    const d1 = digest([{ seq: 1, type: "question.asked", at: at(1), data: asked }]);
    expect(d1.questions).toHaveLength(1);
    expect(d1.questions[0]).toMatchObject({ id: "que_1", kind: "question", items: [{ question: "Which database should the cache use?", options: [{ label: "Redis" }, { label: "Postgres" }], custom: true }] });
    expect(d1.timeline.at(-1)).toMatchObject({ kind: "status", text: "Waiting for an answer: Which database should the cache use?" });
    const d2 = digest([
      { seq: 1, type: "question.asked", at: at(1), data: asked },
      { seq: 2, type: "question.replied", at: at(2), data: { sessionID: "s1", requestID: "que_1", answers: [["Postgres"]] } },
    ]);
    expect(d2.questions).toEqual([]);
    expect(d2.timeline.at(-1)).toMatchObject({ kind: "status", text: "Answered: Postgres" });
  });

  it("a permission ask reads as an approval of what the agent wants to run", () => {
    const q = questionFromEvent("permission.asked", { id: "per_1", permission: "bash", patterns: ["git push origin main"] }, 3, at(3))!;
    expect(q).toMatchObject({ kind: "permission", action: "bash: git push origin main" });
    expect(q.items[0]!.options.map((o) => o.label)).toEqual(["Approve", "Reject"]);
  });

  it("hostile shapes become nothing rather than a throw; a session going idle settles everything", () => {
    expect(questionFromEvent("question.asked", { id: "x", questions: [null, { question: 5 }] }, 1, at(1))).toMatchObject({ items: [{ question: "5" }] });
    expect(questionFromEvent("question.asked", { id: "x", questions: "constructor" }, 1, at(1))).toBeNull();
    expect(questionFromEvent("question.asked", { questions: asked.questions }, 1, at(1))).toBeNull();
    const d = digest([
      { seq: 1, type: "question.asked", at: at(1), data: asked },
      { seq: 2, type: "deckhand.agent_idle", at: at(2), data: { inputSeq: 1 } },
    ]);
    expect(d.questions).toEqual([]);
  });
});

describe("answers", () => {
  const q = questionFromEvent("question.asked", asked, 1, at(1)) as PendingQuestion;
  it("takes an option or the person's own words, in OpenCode's shape", () => {
    expect(checkAnswer(q, { answer: "Postgres" })).toEqual({ ok: true, answer: { kind: "question", requestId: "que_1", answers: [["Postgres"]] }, summary: "Postgres" });
    expect(checkAnswer(q, { answers: [["SQLite, it is embedded"]] })).toMatchObject({ ok: true, summary: "SQLite, it is embedded" });
  });
  it("refuses empty, too many, or unknown options when only options are allowed", () => {
    expect(checkAnswer(q, {})).toMatchObject({ ok: false });
    expect(checkAnswer(q, { answers: [["Redis", "Postgres"]] })).toMatchObject({ ok: false, message: expect.stringContaining("one answer") });
    const strict = { ...q, items: [{ ...q.items[0]!, custom: false }] };
    expect(checkAnswer(strict, { answer: "MySQL" })).toEqual({ ok: false, message: "choose one of: Redis, Postgres" });
  });
  it("approvals: approve/reject as a flag or a word", () => {
    const p = questionFromEvent("permission.asked", { id: "per_1", permission: "webfetch" }, 1, at(1))!;
    expect(checkAnswer(p, { approve: true })).toMatchObject({ ok: true, answer: { reply: "once" }, summary: "Approved" });
    expect(checkAnswer(p, { answer: "Reject" })).toMatchObject({ ok: true, answer: { reply: "reject" } });
    expect(checkAnswer(p, { answer: "maybe" })).toMatchObject({ ok: false });
  });
  it("after the timeout the agent is told to use its judgement; an approval is refused", () => {
    expect(overdueQuestions([q], new Date(Date.parse(at(1)) + 59_000), 60_000)).toEqual([]);
    expect(overdueQuestions([q], new Date(Date.parse(at(1)) + 60_000), 60_000)).toEqual([q]);
    expect(timeoutAnswer(q)).toEqual({ kind: "question", requestId: "que_1", answers: [[NO_ANSWER]] });
    expect(timeoutAnswer(questionFromEvent("permission.asked", { id: "per_1" }, 1, at(1))!)).toEqual({ kind: "permission", requestId: "per_1", reply: "reject" });
  });
});

describe("who answers what (OpenCode's permission rules)", () => {
  it("allows everything by default and denies the question tool when questions are off", () => {
    expect(permissionRules({ questions: false, permissions: [] })).toEqual({ "*": "allow", question: "deny" });
    expect(permissionRules({ questions: true, permissions: [] })).toEqual({ "*": "allow", question: "allow" });
  });
  it("PERMISSIONS routes tools and command patterns to a person", () => {
    expect(permissionRules({ questions: true, permissions: parsePermissions("bash:git push*, webfetch") })).toEqual({ "*": "allow", bash: { "*": "allow", "git push*": "ask" }, webfetch: "ask", question: "allow" });
    expect(() => parsePermissions("bash:")).toThrow(/pattern/);
    expect(() => parsePermissions("rm -rf")).toThrow(/tool or tool:pattern/);
  });
});
