/** Pure decisions of the Linear integration: repo choice, prompt, plan, and what each run state says in Linear. */
import { describe, expect, it } from "vitest";
import type { Run } from "../../src/db/schema.ts";
import { digest } from "../../src/events/fold.ts";
import type { StoredEvent } from "../../src/events/vocabulary.ts";
import { runView } from "../../src/runs/run-view.ts";
import { buildPrompt, continuationPrompt } from "../../src/integrations/linear/build-prompt.ts";
import { askRepoText, chooseRepo, repoFromAnswer, repoFromText } from "../../src/integrations/linear/choose-repo.ts";
import { type LinearVerbosity, planLinearMessages, threadCommentId } from "../../src/integrations/linear/plan-messages.ts";
import type { AnswerSource } from "../../src/runs/answers.ts";
import { todosToPlan } from "../../src/integrations/linear/todos-to-plan.ts";
import { stableUuid } from "../../src/integrations/linear/stable-uuid.ts";
import { assignedToBot } from "../../src/integrations/linear/on-issue-assigned.ts";
import { commentTarget } from "../../src/integrations/linear/on-comment-created.ts";
import { lowestStarted } from "../../src/integrations/linear/move-issue-to-started.ts";
import { checkState, makeState, tokenEndpoint } from "../../src/integrations/linear/oauth.ts";
import { runRow } from "../helpers/run-row.ts";
import { questionElicitation } from "../../src/integrations/linear/questions.ts";
import { checkAnswer } from "../../src/events/questions.ts";

const allowed = ["api", "web"];

describe("repo choice", () => {
  it("repo=<name> in the text wins over the team mapping and the default", () => {
    expect(chooseRepo({ texts: ["please fix repo=web"], teamKey: "ENG", teamRepos: { ENG: "api" }, defaultRepo: "api", allowed })).toEqual({ repo: "web", how: "text" });
    expect(repoFromText("Use `repo=api`.")).toBe("api");
    expect(repoFromText("repo: web")).toBe("web");
    expect(repoFromText("the repository is fine")).toBeNull();
  });
  it("then the team mapping, then DEFAULT_REPO", () => {
    expect(chooseRepo({ texts: ["fix it"], teamKey: "ENG", teamRepos: { ENG: "api", WEB: "web" }, defaultRepo: "web", allowed })).toEqual({ repo: "api", how: "team" });
    expect(chooseRepo({ texts: ["fix it"], teamKey: "OPS", teamRepos: { ENG: "api" }, defaultRepo: "web", allowed })).toEqual({ repo: "web", how: "default" });
  });
  it("otherwise asks, listing the allowed names; an unknown name is named in the question", () => {
    const none = chooseRepo({ texts: ["fix it"], teamKey: "OPS", teamRepos: {}, allowed });
    expect(none).toEqual({ repo: null, reason: "none", allowed });
    expect(askRepoText(none as never)).toBe("Which repository should I work in? Reply with one of: `api`, `web` (for example `repo=api`).");
    const unknown = chooseRepo({ texts: ["repo=mobile"], teamKey: "ENG", teamRepos: { ENG: "api" }, allowed });
    expect(unknown).toMatchObject({ repo: null, reason: "unknown", asked: "mobile" });
    expect(askRepoText(unknown as never)).toContain("I don't know a repo called `mobile`.");
  });
  it("reads an answer: a bare name, repo=, or a sentence naming one repo", () => {
    expect(repoFromAnswer("web", allowed)).toBe("web");
    expect(repoFromAnswer("repo=api", allowed)).toBe("api");
    expect(repoFromAnswer("Let's use WEB please", allowed)).toBe("web");
    expect(repoFromAnswer("api or web?", allowed)).toBeNull();
    expect(repoFromAnswer("no idea", allowed)).toBeNull();
  });
});

describe("prompt building", () => {
  it("has the identifier, title, description, comments and the request, without our repo= bookkeeping", () => {
    const p = buildPrompt({
      identifier: "ENG-42",
      title: "Fix the login bug",
      description: "Users cannot log in with SSO. repo=api",
      url: "https://linear.app/x/issue/ENG-42",
      comments: [{ author: "Ann", body: "It started after the 2.3 release" }, { body: "  " }],
      request: "@deckhand please fix repo=api",
      guidance: ["Run npm test before finishing"],
    });
    expect(p).toContain("Linear issue ENG-42: Fix the login bug");
    expect(p).toContain("Users cannot log in with SSO.");
    expect(p).toContain("- Ann: It started after the 2.3 release");
    expect(p).toContain("Request:\n@deckhand please fix");
    expect(p).toContain("- Run npm test before finishing");
    expect(p).not.toContain("repo=api");
  });
  it("uses Linear's promptContext when there is one", () => {
    const p = buildPrompt({ identifier: "ENG-1", title: "T", description: "D", promptContext: '<issue identifier="ENG-1">…</issue>', comments: [{ body: "not shown" }] });
    expect(p).toContain('Context from Linear:\n<issue identifier="ENG-1">…</issue>');
    expect(p).not.toContain("not shown");
    expect(continuationPrompt("Task", "also add tests")).toMatch(/^Task\n\nFollow-up from Linear.*\nalso add tests$/s);
  });
});

describe("todo list → session plan", () => {
  it("maps OpenCode statuses to Linear's, and cancels unfinished steps of a stopped run", () => {
    const todos = [
      { content: "Reproduce", status: "completed" },
      { content: "Fix", status: "in_progress" },
      { content: "Test", status: "pending" },
      { content: "Old idea", status: "cancelled" },
    ];
    expect(todosToPlan(todos)).toEqual([
      { content: "Reproduce", status: "completed" },
      { content: "Fix", status: "inProgress" },
      { content: "Test", status: "pending" },
      { content: "Old idea", status: "canceled" },
    ]);
    expect(todosToPlan(todos, true).map((s) => s.status)).toEqual(["completed", "canceled", "canceled", "canceled"]);
  });
});

// ---- run state → Linear messages ----------------------------------------------------------------

function makeRun(over: Partial<Run> = {}): Run {
  return runRow(new Date("2026-01-01T00:00:00Z"), {
    id: "r-test12345",
    status: "queued",
    repo: "api",
    branch: "eng-42-fix-the-login-bug",
    prompt: "Linear issue ENG-42: Fix the login bug",
    title: "ENG-42: Fix the login bug",
    source: "linear",
    sourceRef: { workspaceId: "org-1", mode: "agent", agentSessionId: "sess-1", issueId: "issue-42", identifier: "ENG-42" },
    ...over,
  });
}

let seq = 0;
const ev = (type: string, data: Record<string, unknown>): StoredEvent => ({ seq: ++seq, type, at: "2026-01-01T00:00:01Z", data });
const assistant = (id: string) => ev("message.updated", { info: { id, role: "assistant" } });
const text = (msg: string, part: string, t: string) => ev("message.part.updated", { part: { type: "text", id: part, messageID: msg, text: t } });
const tool = (callID: string, name: string, status: string, input: Record<string, unknown>, output?: string) =>
  ev("message.part.updated", { part: { type: "tool", callID, tool: name, messageID: "m1", state: { status, input, ...(output ? { output } : {}) } } });

const workEvents = () => {
  seq = 0;
  return [
    assistant("m1"),
    text("m1", "p1", "Let me look at the login code first."),
    tool("c0", "todowrite", "completed", { todos: [{ content: "Fix login", status: "in_progress" }, { content: "Run tests", status: "pending" }] }),
    tool("c1", "edit", "running", { filePath: "/workspace/repo/src/app.ts" }),
    tool("c1", "edit", "completed", { filePath: "/workspace/repo/src/app.ts" }),
    tool("c2", "bash", "completed", { command: "npm test" }, "12 tests passed\nmore output"),
    tool("c3", "bash", "running", { command: "npm run lint" }),
  ];
};

const planFor = (run: Run, events: StoredEvent[], state: Record<string, unknown> = {}, verbosity?: LinearVerbosity, answers?: AnswerSource[]) => {
  const d = digest(events);
  return planLinearMessages({ run, view: runView(run, d, "https://deckhand.test/r/tok"), digest: d, state, now: new Date(), ...(answers ? { answers } : {}) }, verbosity);
};
const reasoning = (msg: string, part: string, t: string, done = true) =>
  ev("message.part.updated", { part: { type: "reasoning", id: part, messageID: msg, text: t, time: { start: 1, ...(done ? { end: 2 } : {}) } } });
const contents = (msgs: { payload: Record<string, unknown> }[]) => msgs.filter((m) => m.payload.op === "activity").map((m) => m.payload.content as any);

describe("run → agent activities", () => {
  it("a new run: a first thought naming the repo, the run page as external link, the issue to started", () => {
    const { messages } = planFor(makeRun(), []);
    expect(messages.map((m) => m.kind)).toEqual(["activity.thought", "session", "start-issue"]);
    expect(messages[0]!.payload).toMatchObject({ op: "activity", sessionId: "sess-1", workspaceId: "org-1", content: { type: "thought", body: "Starting a sandbox for api…" } });
    expect(messages[0]!.payload.id).toBe(stableUuid(messages[0]!.dedupeKey));
    expect(messages[1]!.payload).toMatchObject({ input: { addedExternalUrls: [{ label: "Deckhand run", url: "https://deckhand.test/r/tok" }], externalLink: "https://deckhand.test/r/tok" } });
    expect(messages[2]!.payload).toEqual({ op: "start-issue", workspaceId: "org-1", issueId: "issue-42" });
    expect(new Set(messages.map((m) => m.orderingKey))).toEqual(new Set(["linear:session:sess-1"]));
  });

  it("finished tool calls become actions, commentary before a tool a thought, todos the plan (once)", () => {
    const run = makeRun({ status: "running" });
    const plan = planFor(run, workEvents());
    const acts = contents(plan.messages);
    expect(acts).toContainEqual({ type: "thought", body: "Let me look at the login code first." });
    expect(acts).toContainEqual({ type: "action", action: "Edited", parameter: "src/app.ts" });
    expect(acts).toContainEqual({ type: "action", action: "Ran", parameter: "npm test", result: "12 tests passed" });
    // Still running: not yet an action; the todo tool is the plan, not an action.
    expect(acts.some((a) => a.parameter === "npm run lint")).toBe(false);
    expect(acts.some((a) => a.action === "Updated the plan")).toBe(false);
    // A command's output is the agent's (Linear renders an action's result as Markdown): its links and mentions inert.
    const hostile = contents(planFor(run, [...workEvents(), tool("c9", "bash", "completed", { command: "cat notes" }, "see [the fix](https://evil.example/x) @ann\nmore")]).messages);
    expect(hostile).toContainEqual({ type: "action", action: "Ran", parameter: "cat notes", result: "see the fix (`https://evil.example/x`) `@ann`" });
    const planMsg = plan.messages.find((m) => m.kind === "session.plan")!;
    expect(planMsg.payload.input).toEqual({ plan: [{ content: "Fix login", status: "inProgress" }, { content: "Run tests", status: "pending" }] });
    expect(planMsg.coalesce).toBe(true);
    // Planning again with the remembered state: the same plan is not sent twice.
    const again = planFor(run, workEvents(), plan.state);
    expect(again.messages.some((m) => m.kind === "session.plan")).toBe(false);
    // Same keys every time (the outbox queues each once).
    expect(again.messages.map((m) => m.dedupeKey)).toEqual(plan.messages.filter((m) => m.kind !== "session.plan").map((m) => m.dedupeKey));
    expect(new Set(plan.messages.map((m) => m.dedupeKey)).size).toBe(plan.messages.length);
  });

  it("the agent's questions: one select elicitation each (Approve / Reject for an approval), its words made inert; gone once the run stops", () => {
    const run = makeRun({ status: "running" });
    seq = 0;
    const events = [
      ev("question.asked", { id: "que_1", questions: [{ question: "Ping @ann or see [this](https://evil.example)?", header: "Who", options: [{ label: "ann", description: "the owner" }, { label: "bob", description: "" }] }] }),
      ev("permission.asked", { id: "per_1", permission: "bash", patterns: ["git push origin main"] }),
    ];
    const plan = planFor(run, events);
    const asks = plan.messages.filter((m) => m.kind === "activity.elicitation");
    expect(asks.map((m) => m.dedupeKey)).toEqual([`linear:${run.id}:question:que_1`, `linear:${run.id}:question:per_1`]);
    const [q, p] = asks.map((m) => m.payload as any);
    expect(q.signal).toBe("select");
    expect(q.signalMetadata).toEqual({ options: [{ label: "ann", value: "ann" }, { label: "bob", value: "bob" }] });
    expect(q.content.body).toContain("Ping `@ann` or see this (`https://evil.example`)?");
    expect(q.content.body).toContain("Pick an option, or reply with your own answer.");
    expect(p.signalMetadata).toEqual({ options: [{ label: "Approve", value: "Approve" }, { label: "Reject", value: "Reject" }] });
    expect(p.content.body).toContain("> bash: git push origin main");
    // Every other activity repeating the agent's words (the "Waiting for an answer: ..." progress thought) too.
    for (const m of plan.messages) expect(JSON.stringify(m.payload)).not.toMatch(/\]\(https:|[^`]@ann/);
    // Planned again: the same keys (sent once); a stopped run asks nothing.
    expect(planFor(run, events).messages.filter((m) => m.kind === "activity.elicitation").map((m) => m.dedupeKey)).toEqual(asks.map((m) => m.dedupeKey));
    expect(planFor(makeRun({ status: "cancelled" }), events).messages.some((m) => m.kind === "activity.elicitation")).toBe(false);
  });

  it("what a person writes back answers the question: the option's exact label, one line per part, approve words", () => {
    const d = digest([
      ev("question.asked", { id: "que_2", questions: [{ question: "Colour?", options: [{ label: "Red" }] }, { question: "Size?", options: [] }] }),
      ev("question.asked", { id: "que_3", questions: [{ question: "Cache?", options: [{ label: "LRU" }, { label: "TTL" }], custom: false }] }),
      ev("permission.asked", { id: "per_2", permission: "webfetch" }),
    ]);
    const [two, one, perm] = d.questions;
    expect(checkAnswer(two!, { answer: "red\n large \n" })).toMatchObject({ ok: true, answer: { answers: [["Red"], ["large"]] } });
    expect(checkAnswer(one!, { answer: " ttl " })).toMatchObject({ ok: true, answer: { answers: [["TTL"]] } });
    expect(checkAnswer(one!, { answer: "something else" })).toMatchObject({ ok: false });
    expect(checkAnswer(perm!, { answer: "Reject" })).toMatchObject({ ok: true, answer: { reply: "reject" } });
    expect(questionElicitation(two!).select).toBeNull();
    expect(questionElicitation(two!).content.body).toContain("Reply with one answer per line, in this order.");
  });

  it("LINEAR_VERBOSITY: quiet keeps the start, the questions and the result; normal adds the progress; verbose the reasoning, made inert", () => {
    const events = () => {
      const w = workEvents();
      // In seq order: the reasoning after the commentary, before the tool calls; the unfinished one last.
      const r1 = reasoning("m1", "r1", "The SSO redirect drops the state; ping @ann at https://evil.example");
      const r2 = reasoning("m1", "r2", "still thinking", false);
      const all = [ev("deckhand.prompt_delivered", { inputSeq: 1 }), ...w.slice(0, 2), r1, ...w.slice(2), r2];
      return all.map((e, i) => ({ ...e, seq: i + 1 }));
    };
    const run = makeRun({ status: "running" });
    const kinds = (v: LinearVerbosity) => planFor(run, events(), {}, v).messages.map((m) => m.dedupeKey.replace(/^linear:r-test12345:/, "").replace(/:.*$/, ""));
    const quiet = planFor(run, events(), {}, "quiet");
    const normal = planFor(run, events(), {}, "normal");
    const verbose = planFor(run, events(), {}, "verbose");
    // Quiet: the start thought and no tool actions or progress thoughts (the plan stays: it is not an activity).
    expect(contents(quiet.messages)).toEqual([{ type: "thought", body: "Starting a sandbox for api…" }]);
    expect(kinds("quiet")).toEqual(["start", "run-link", "start-issue", "plan"]);
    // Normal: today's activities, and no reasoning.
    expect(contents(normal.messages)).toContainEqual({ type: "action", action: "Edited", parameter: "src/app.ts" });
    expect(contents(normal.messages)).toContainEqual({ type: "thought", body: "Let me look at the login code first." });
    expect(kinds("normal").includes("reasoning")).toBe(false);
    expect(normal.messages.length).toBeGreaterThan(quiet.messages.length);
    // Verbose: normal plus the finished reasoning, in its place (before the tool calls that followed it), inert.
    const thoughts = verbose.messages.filter((m) => m.dedupeKey.includes(":reasoning:"));
    expect(thoughts.map((m) => m.dedupeKey)).toEqual(["linear:r-test12345:reasoning:r1"]);
    const body = (thoughts[0]!.payload.content as any).body as string;
    expect(body).toBe("_Thinking:_ The SSO redirect drops the state; ping `@ann` at `https://evil.example`");
    const keys = verbose.messages.map((m) => m.dedupeKey);
    expect(keys.indexOf("linear:r-test12345:reasoning:r1")).toBeLessThan(keys.indexOf("linear:r-test12345:tool:c1"));
    expect(keys.filter((k) => !k.includes(":reasoning:"))).toEqual(normal.messages.map((m) => m.dedupeKey));
    // Once the run is no longer busy, unfinished reasoning is final too.
    const idle = planFor(makeRun({ status: "idle" }), [...events(), ev("deckhand.agent_idle", { inputSeq: 1 })], {}, "verbose");
    expect(idle.messages.map((m) => m.dedupeKey)).toContain("linear:r-test12345:reasoning:r2");
    // Questions and the result still reach a quiet session.
    seq = 100;
    const asked = planFor(run, [ev("question.asked", { id: "que_q", questions: [{ question: "Which one?", options: [{ label: "a" }] }] })], {}, "quiet");
    expect(asked.messages.map((m) => m.kind)).toContain("activity.elicitation");
    const result = { summary: "Done", filesChanged: [], additions: 0, deletions: 0, branch: "b", pushed: false };
    expect(contents(planFor(makeRun({ status: "idle", result, deliveredInputSeq: 1 }), events(), {}, "quiet").messages).map((c) => c.type)).toEqual(["thought", "response"]);
    expect(contents(planFor(makeRun({ status: "failed", statusReason: "boom" }), events(), {}, "quiet").messages).map((c) => c.type)).toEqual(["thought", "error"]);
  });

  it("the reasoning the digest keeps is bounded: the newest snippets, each cut", () => {
    seq = 0;
    const start = assistant("m1");
    const many = Array.from({ length: 30 }, (_, i) => reasoning("m1", `r${i}`, `${"x".repeat(5000)} ${i}`));
    const d = digest([start, ...many, reasoning("m1", "r29", "updated in place")]);
    expect(d.reasoning.map((r) => r.partId)).toEqual(Array.from({ length: 10 }, (_, i) => `r${20 + i}`));
    expect(d.reasoning.every((r) => r.text.length <= 1500)).toBe(true);
    expect(d.reasoning.at(-1)!.text).toBe("updated in place");
    // Hostile shapes: no id, a non-string text, an object as time: ignored or read as text, never a throw.
    expect(digest([ev("message.part.updated", { part: { type: "reasoning", text: "no id" } }), ev("message.part.updated", { part: { type: "reasoning", id: "z", text: { toString: 1 }, time: "x" } })]).reasoning).toEqual([]);
  });

  it("a classic run's question is a reply in its thread saying how to answer; once answered elsewhere, a note says by whom", () => {
    seq = 0;
    const run = makeRun({ status: "running", sourceRef: { workspaceId: "org-1", mode: "classic", issueId: "issue-42", identifier: "ENG-42" } });
    const asked = [ev("question.asked", { id: "que_c", questions: [{ question: "Which cache, @bob?", options: [{ label: "lru", description: "the LRU one" }, { label: "ttl" }] }] })];
    const first = planFor(run, asked);
    const q = first.messages.find((m) => m.dedupeKey.endsWith(":question:que_c"))!;
    expect(q.payload).toMatchObject({ op: "comment", parentId: threadCommentId(run.id) });
    const body = q.payload.body as string;
    expect(body).toContain("**The agent's question**");
    expect(body).toContain("Which cache, `@bob`?");
    expect(body).toContain("> - lru — the LRU one");
    expect(body).toContain("Reply in this thread with one of the options (for example `lru`) or in your own words.");
    expect(first.state).toEqual({ asked: ["que_c"] });
    // Answered on Slack by Ann: a note in the thread; answered from Linear itself: nothing more (the reply is there).
    const answered = [...asked, ev("question.replied", { requestID: "que_c", answers: [["ttl"]] })];
    const settled = planFor(run, answered, first.state, "normal", [{ questionId: "que_c", author: "Ann", source: "slack" }]);
    const note = settled.messages.find((m) => m.dedupeKey.endsWith(":settled:que_c"))!;
    expect(note.payload).toMatchObject({ op: "comment", parentId: threadCommentId(run.id), body: "Answered by Ann on Slack: ttl\n\n(The agent asked: Which cache, `@bob`?)" });
    expect(planFor(run, answered, first.state, "normal", [{ questionId: "que_c", author: "Ann", source: "linear" }]).messages.some((m) => m.dedupeKey.includes(":settled:"))).toBe(false);
    // A question Linear never showed gets no note.
    expect(planFor(run, answered, {}, "normal", [{ questionId: "que_c", author: "Ann", source: "slack" }]).messages.some((m) => m.dedupeKey.includes(":settled:"))).toBe(false);
  });

  it("an agent session's question settled elsewhere: a thought saying who and how (Linear cannot edit the elicitation)", () => {
    seq = 0;
    const run = makeRun({ status: "running" });
    const asked = [
      ev("question.asked", { id: "que_a", questions: [{ question: "Which cache?", options: [{ label: "lru" }] }] }),
      ev("permission.asked", { id: "per_a", permission: "bash", patterns: ["git push"] }),
      ev("question.asked", { id: "que_t", questions: [{ question: "Name?", options: [] }] }),
    ];
    const state = planFor(run, asked).state!;
    expect(state).toEqual({ asked: ["que_a", "per_a", "que_t"] });
    const settled = [
      ...asked,
      ev("question.replied", { requestID: "que_a", answers: [["lru"]] }),
      ev("permission.replied", { requestID: "per_a", reply: "once" }),
      ev("question.replied", { requestID: "que_t", answers: [["No answer: nobody replied in time. Use your best judgement and say what you assumed."]] }),
    ];
    const answers: AnswerSource[] = [
      { questionId: "que_a", author: "Bo [x](https://evil.example)", source: "web" },
      { questionId: "per_a", author: "carol", source: "cli" },
      { questionId: "que_t", author: "deckhand", source: "timeout" },
    ];
    const notes = planFor(run, settled, state, "quiet", answers).messages.filter((m) => m.dedupeKey.includes(":settled:"));
    expect(notes.map((m) => (m.payload.content as any).type)).toEqual(["thought", "thought", "thought"]);
    expect(notes.map((m) => (m.payload.content as any).body)).toEqual([
      "Answered by Bo x (`https://evil.example`) on the run page: lru\n\n(The agent asked: Which cache?)",
      "Approved by carol on the CLI.\n\n(The agent asked: Approval: bash: git push)",
      "Nobody answered in time; the agent goes on with its best judgement.\n\n(The agent asked: Name?)",
    ]);
  });

  it("idle: the PR attached and linked, then a response with the summary, files and link; the final text is not a thought", () => {
    const events = [...workEvents(), assistant("m2"), text("m2", "p9", "Fixed the SSO redirect.")];
    const result = {
      summary: "Fixed the SSO redirect.",
      filesChanged: [{ path: "src/app.ts", additions: 3, deletions: 1 }],
      additions: 3,
      deletions: 1,
      branch: "eng-42-fix-the-login-bug",
      pushed: true,
      pullRequestUrl: "https://github.com/acme/api/pull/7",
    };
    const { messages } = planFor(makeRun({ status: "idle", result, deliveredInputSeq: 1 }), events);
    const tail = messages.slice(-3);
    expect(tail.map((m) => m.kind)).toEqual(["attach", "session", "activity.response"]);
    expect(tail[0]!.payload).toMatchObject({ op: "attach", issueId: "issue-42", url: "https://github.com/acme/api/pull/7" });
    expect(tail[1]!.payload).toMatchObject({ input: { addedExternalUrls: [{ label: "Pull request", url: "https://github.com/acme/api/pull/7" }] } });
    const body = (tail[2]!.payload.content as any).body as string;
    expect(body).toContain("Fixed the SSO redirect.");
    expect(body).toContain("`src/app.ts` (+3 −1)");
    expect(body).toContain("[Pull request](https://github.com/acme/api/pull/7)");
    expect(contents(messages).filter((c) => c.body === "Fixed the SSO redirect.")).toHaveLength(0);
    // A second turn (after a follow-up) gets its own response.
    const second = planFor(makeRun({ status: "idle", result, deliveredInputSeq: 3 }), events);
    expect(second.messages.filter((m) => m.kind === "activity.response").map((m) => m.dedupeKey)).toEqual(["linear:r-test12345:response:3"]);
  });

  it("no PR: the diff on the run page is the link", () => {
    const result = { summary: "Done", filesChanged: [{ path: "a.txt", additions: 1, deletions: 0 }], additions: 1, deletions: 0, branch: "b", pushed: true };
    const { messages } = planFor(makeRun({ status: "idle", result, deliveredInputSeq: 1 }), []);
    expect(messages.find((m) => m.kind === "attach")!.payload.url).toBe("https://deckhand.test/r/tok#diff");
  });

  it("failed: an error activity with the reason in plain words; stopped: a final response", () => {
    const failed = planFor(makeRun({ status: "failed", statusReason: "The model provider rejected the API key", failureCode: "model_auth" }), []);
    const err = contents(failed.messages).find((c) => c.type === "error");
    expect(err.body).toMatch(/^The run failed: The model provider rejected the API key/);
    const stopped = planFor(makeRun({ status: "cancelled", statusReason: "Stopped by Ann (linear)" }), []);
    expect(contents(stopped.messages).at(-1)).toMatchObject({ type: "response", body: expect.stringMatching(/^Stopped\. Stopped by Ann \(linear\)\./) });
    expect(contents(stopped.messages).some((c) => c.type === "error")).toBe(false);
  });

  it("classic runs talk in one comment thread: the start comment, replies under it", () => {
    const result = { summary: "Done", filesChanged: [], additions: 0, deletions: 0, branch: "b", pushed: false };
    const run = makeRun({ status: "idle", result, deliveredInputSeq: 1, sourceRef: { workspaceId: "org-1", mode: "classic", issueId: "issue-42", identifier: "ENG-42" } });
    const { messages } = planFor(run, workEvents());
    expect(messages.every((m) => m.payload.op !== "activity" && m.orderingKey === "linear:issue:issue-42")).toBe(true);
    const comments = messages.filter((m) => m.payload.op === "comment");
    expect(comments[0]!.payload).toMatchObject({ id: threadCommentId(run.id), body: expect.stringContaining("starting a sandbox for api") });
    expect(comments[1]!.payload).toMatchObject({ parentId: threadCommentId(run.id), body: expect.stringContaining("No files were changed.") });
  });

  it("a follow-up sent elsewhere (the run page, the CLI) is shown once, attributed and inert, at every verbosity; the session's own are not", () => {
    const run = makeRun({ status: "running" });
    const d = digest([]);
    const foreignPrompts = [
      { seq: 2, text: "also fix the logout @everyone [x](https://evil.example)", author: "Ana", source: "web" },
      { seq: 3, text: "y".repeat(900), author: null, source: "cli" },
    ];
    for (const verbosity of ["quiet", "normal", "verbose"] as const) {
      const { messages } = planLinearMessages({ run, view: runView(run, d, "https://deckhand.test/r/tok"), digest: d, state: {}, now: new Date(), foreignPrompts }, verbosity);
      const notes = messages.filter((m) => /:input:/.test(m.dedupeKey));
      expect(notes.map((m) => m.dedupeKey)).toEqual(["linear:r-test12345:input:2", "linear:r-test12345:input:3"]);
      expect(notes.every((m) => m.role === undefined)).toBe(true); // a person's words are never dropped as stale progress
      const [a, b] = notes.map((m) => (m.payload.content as any).body as string);
      expect(a).toMatch(/^Follow-up from Ana on the run page:\n\n> also fix the logout/);
      expect(a).toContain("`@everyone`"); // code: nobody is notified
      expect(a).not.toContain("](https://evil.example)");
      expect(b).toMatch(/^Follow-up from someone on the CLI:/);
      expect(b.length).toBeLessThan(600);
    }
    const classic = makeRun({ status: "running", sourceRef: { workspaceId: "org-1", mode: "classic", issueId: "issue-42", identifier: "ENG-42" } });
    const c = planLinearMessages({ run: classic, view: runView(classic, d, "https://deckhand.test/r/tok"), digest: d, state: {}, now: new Date(), foreignPrompts: foreignPrompts.slice(0, 1) });
    expect(c.messages.find((m) => /:input:2$/.test(m.dedupeKey))!.payload).toMatchObject({ op: "comment", parentId: threadCommentId(classic.id) });
  });

  it("not a Linear run: nothing", () => {
    expect(planFor(makeRun({ source: "api", sourceRef: {} }), []).messages).toEqual([]);
  });
});

describe("webhook decisions", () => {
  it("an Issue update is an assignment to the bot only when the assignee (or delegate) changed to it", () => {
    const base = { type: "Issue", action: "update", data: { id: "i", assigneeId: "bot" }, updatedFrom: { assigneeId: null } };
    expect(assignedToBot(base, ["bot"])).toBe(true);
    expect(assignedToBot({ ...base, data: { id: "i", delegateId: "bot" }, updatedFrom: { delegateId: "x" } }, ["bot"])).toBe(true);
    expect(assignedToBot({ ...base, updatedFrom: { title: "old" } }, ["bot"])).toBe(false);
    expect(assignedToBot(base, ["someone-else"])).toBe(false);
    expect(assignedToBot({ ...base, action: "create" }, ["bot"])).toBe(false);
  });
  it("a comment steers the run whose thread it replies to (on that issue only); otherwise it only answers a pending question", () => {
    const a = makeRun({ id: "r-a", sourceRef: { workspaceId: "org-1", mode: "classic", issueId: "issue-42", identifier: "ENG-42" } });
    expect(commentTarget({ issueId: "issue-42" }, a, false)).toEqual({ kind: "run", run: a });
    expect(commentTarget({ issueId: "issue-42" }, a, true)).toEqual({ kind: "run", run: a });
    // A thread of another issue's run is not this comment's conversation.
    expect(commentTarget({ issueId: "issue-7" }, a, false)).toBeNull();
    expect(commentTarget({ issueId: "issue-42" }, null, true)).toEqual({ kind: "answer" });
    expect(commentTarget({ issueId: "issue-42" }, null, false)).toBeNull();
  });
  it("the started state with the lowest position, whatever the order", () => {
    const states = [
      { id: "rev", type: "started", position: 3 },
      { id: "todo", type: "unstarted", position: 1 },
      { id: "prog", type: "started", position: 2 },
    ];
    expect(lowestStarted(states)?.id).toBe("prog");
    expect(lowestStarted([{ id: "x", type: "completed", position: 0 }])).toBeUndefined();
  });
  it("stable ids are UUIDs, the same for the same key; OAuth state expires; token endpoint follows LINEAR_API_URL", () => {
    expect(stableUuid("k")).toBe(stableUuid("k"));
    expect(stableUuid("k")).not.toBe(stableUuid("k2"));
    expect(stableUuid("k")).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const s = makeState("secret", 1_000_000);
    expect(checkState("secret", s, 1_000_000 + 60_000)).toBe(true);
    expect(checkState("other", s, 1_000_000 + 60_000)).toBe(false);
    expect(checkState("secret", s, 1_000_000 + 16 * 60_000)).toBe(false);
    expect(tokenEndpoint(undefined)).toBe("https://api.linear.app/oauth/token");
    expect(tokenEndpoint("http://127.0.0.1:9999/graphql")).toBe("http://127.0.0.1:9999/oauth/token");
  });
});
