/**
 * Random event shapes through every renderer: the agent writes its events (it can read the run's relay token), so
 * any JSON may arrive in any field. Seeded random events, with hostile keys (`constructor`, `__proto__`, a
 * `toString` that is not a function) and wrong types (todos `[null]`, numeric `content`), are folded (all at once
 * and in random chunks, which must agree) and rendered by the run page, the runs list, Slack, Linear, the CLI and
 * the API's JSON. None may throw. Prints how many events were tried.
 */
import { describe, expect, it } from "vitest";
import { progressLine, summary } from "../../src/cli/progress.ts";
import { digestOf, emptyFold, fold, TIMELINE_MAX } from "../../src/events/fold.ts";
import type { RunDigest, StoredEvent } from "../../src/events/vocabulary.ts";
import { planLinearMessages } from "../../src/integrations/linear/plan-messages.ts";
import { endContent, finalContent, statusContent, statusReply } from "../../src/integrations/slack/messages.ts";
import { planSlack } from "../../src/integrations/slack/notifier.ts";
import { todosToPlan } from "../../src/integrations/linear/todos-to-plan.ts";
import { runView, viewOf } from "../../src/runs/run-view.ts";
import { renderRunPage, runRegions } from "../../src/web/run-page.ts";
import { renderRows } from "../../src/web/runs-list.ts";
import { runRow } from "../helpers/run-row.ts";

/** mulberry32: a small seeded PRNG, so a failure can be replayed from its seed. */
function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const HOSTILE_KEYS = ["constructor", "__proto__", "toString", "valueOf", "hasOwnProperty", "prototype", "then", "length"];
const TYPES = ["message.updated", "message.part.updated", "todo.updated", "session.status", "session.idle", "session.error", "deckhand.opencode_exited", "deckhand.prompt_delivered", "deckhand.agent_idle", "deckhand.opencode_ready", "question.asked", "permission.asked", "question.replied", "permission.replied", "constructor", "__proto__", "x.y"];
const TOOLS = ["constructor", "__proto__", "toString", "bash", "edit", "todowrite", "read", "hasOwnProperty", "valueOf", ""];

function generator(seed: number) {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const value = (depth = 0): unknown => {
    const k = Math.floor(r() * (depth > 2 ? 7 : 10));
    switch (k) {
      case 0: return null;
      case 1: return Math.floor(r() * 1e6) * (r() < 0.5 ? -1 : 1);
      case 2: return r() < 0.5;
      case 3: return pick(HOSTILE_KEYS);
      case 4: return "x".repeat(Math.floor(r() * 300)) + "\n<script>alert(1)</script>*_~`";
      case 5: return "";
      case 6: return pick([1e308, -0, 0.5, Number.MAX_SAFE_INTEGER]);
      case 7: return Array.from({ length: Math.floor(r() * 4) }, () => value(depth + 1));
      default: {
        const o: Record<string, unknown> = {};
        for (let i = Math.floor(r() * 4); i > 0; i--) o[pick([...HOSTILE_KEYS, "id", "type", "text", "status", "content", "name", "data"])] = value(depth + 1);
        return o;
      }
    }
  };
  /** A plausible field most of the time, anything else sometimes. */
  const maybe = (plausible: unknown) => (r() < 0.6 ? plausible : value());
  const data = (type: string): Record<string, unknown> => {
    switch (type) {
      case "message.updated":
        return { info: maybe({ id: maybe(pick(["m1", "m2", "constructor"])), role: maybe(pick(["assistant", "user", "__proto__"])), tokens: maybe({ input: maybe(5), output: maybe(7), cache: maybe({ read: maybe(1) }) }), cost: maybe(0.01), error: maybe({ name: maybe("APIError"), data: maybe({ statusCode: maybe(429), message: maybe("slow down") }) }) }) };
      case "message.part.updated":
        if (r() < 0.2) return { part: maybe({ type: maybe(pick(["reasoning", "constructor"])), id: maybe(pick(["r1", "r2", "constructor", "__proto__"])), text: maybe(pick(["thinking @ann https://x.example", "", "x".repeat(3000)])), time: maybe({ start: 1, end: maybe(pick([2, "3", null])) }) }) };
        return r() < 0.5
          ? { part: maybe({ type: "tool", callID: maybe(pick(["c1", "c2", "constructor", "__proto__"])), tool: maybe(pick(TOOLS)), state: maybe({ status: maybe(pick(["pending", "running", "completed", "error", "constructor"])), input: maybe({ filePath: maybe("/workspace/repo/a.ts"), command: maybe("npm test"), todos: maybe([null, { content: maybe(5), status: maybe("in_progress") }, { content: "ok", status: "constructor" }]) }), output: maybe("done"), error: maybe("boom"), title: maybe("t") }) }) }
          : { part: maybe({ type: "text", id: maybe(pick(["p1", "p2", "constructor"])), messageID: maybe(pick(["m1", "m2", "constructor"])), text: maybe("hello **world**"), synthetic: maybe(false) }) };
      case "todo.updated":
        return { todos: maybe([null, 7, { content: maybe(42), status: maybe(pick(["completed", "pending", "toString", "__proto__"])), priority: maybe("high") }, { content: { toString: 1 } }]) };
      case "session.status":
        return { status: maybe({ type: maybe(pick(["busy", "idle", "retry"])), attempt: maybe(2), message: maybe("overloaded") }) };
      case "question.asked":
        return { id: maybe(pick(["q1", "constructor", "__proto__"])), questions: maybe([null, 5, { question: maybe("Which one?"), header: maybe("Pick"), options: maybe([null, { label: maybe(pick(["A", "constructor", ""])), description: maybe(3) }, "x"]), multiple: maybe(true), custom: maybe(false) }]) };
      case "permission.asked":
        return { id: maybe(pick(["p1", "constructor"])), permission: maybe(pick(["bash", "__proto__"])), patterns: maybe([null, "git push *", 7]) };
      case "question.replied":
      case "permission.replied":
        return { requestID: maybe(pick(["q1", "p1", "constructor"])), answers: maybe([["A"], null, 5]), reply: maybe(pick(["once", "reject", "constructor"])) };
      case "session.error":
        return { error: maybe({ name: maybe(pick(["ProviderAuthError", "constructor", "MessageAbortedError"])), data: maybe({ statusCode: maybe(401), message: maybe("bad key") }) }) };
      default:
        return { inputSeq: maybe(pick([1, 2])), sessionId: maybe("s1"), reason: maybe("gone") };
    }
  };
  const events = (n: number): StoredEvent[] =>
    Array.from({ length: n }, (_, i) => {
      const type = pick(TYPES);
      return { seq: i + 1, type, at: r() < 0.9 ? new Date(1_800_000_000_000 + i * 1000).toISOString() : (value() as string), data: r() < 0.95 ? data(type) : (value() as Record<string, unknown>) };
    });
  return { r, events };
}

const t0 = new Date("2026-06-01T10:00:00Z");
const SOURCES = {
  slack: { channel: "C1", threadTs: "1.1", messageTs: "1.1" },
  linear: { workspaceId: "w1", mode: "agent", agentSessionId: "s1", issueId: "i1", identifier: "ENG-1" },
  cli: {},
} as const;
const STATUSES = ["queued", "provisioning", "running", "idle", "closed", "failed", "cancelled"];

function renderEverything(d: RunDigest, status: string, source: keyof typeof SOURCES) {
  const run = runRow(t0, {
    id: "r-fuzz",
    status,
    repo: "demo",
    branch: "deckhand/fuzz",
    prompt: "fuzz",
    title: "fuzz",
    source,
    sourceRef: { ...SOURCES[source] },
    lastEventSeq: d.lastSeq,
    deliveredInputSeq: 1,
    statusReason: status === "failed" ? "boom" : null,
    result: status === "idle" || status === "closed" ? { summary: d.finalText, filesChanged: [], pushed: false } : null,
  });
  const view = viewOf(run, d, "https://deckhand.example/r/tok");
  const out: unknown[] = [];
  out.push(renderRunPage(view, null, { base: "/r/tok" }), JSON.stringify(runRegions(view)));
  out.push(renderRows([{ ...run, usage: d.usage } as never]));
  const input = { run, view: runView(run, d, view.url), digest: d, state: {}, now: t0 };
  const answers = [{ questionId: "q1", author: "constructor", source: "__proto__" }];
  out.push(planLinearMessages({ ...input, state: { asked: ["q1", "p1", "constructor"] }, answers }, "verbose"), planLinearMessages(input, "quiet"));
  out.push(planSlack(input), planLinearMessages(input), todosToPlan(d.todos, status === "failed"));
  out.push(statusContent(view), finalContent(view), endContent(view), statusReply(view));
  out.push(progressLine(view), summary(view));
  out.push(JSON.stringify({ ...view, events: [] }));
  return out;
}

describe("random event shapes through every renderer", () => {
  it("nothing throws; folding in chunks gives what folding at once gives", () => {
    let tried = 0;
    for (let seed = 1; seed <= 150; seed++) {
      const { r, events } = generator(seed);
      const evs = events(40);
      tried += evs.length;
      let whole: RunDigest;
      try {
        whole = digestOf(fold(emptyFold(), evs));
        // Chunked, through a JSON round trip, as the receiver stores it between batches.
        let state = emptyFold();
        for (let i = 0; i < evs.length; ) {
          const n = 1 + Math.floor(r() * 7);
          state = JSON.parse(JSON.stringify(fold(state, evs.slice(i, i + n))));
          i += n;
        }
        expect(JSON.stringify(digestOf(state))).toBe(JSON.stringify(whole));
        const status = STATUSES[seed % STATUSES.length]!;
        const source = (["slack", "linear", "cli"] as const)[seed % 3]!;
        renderEverything(whole, status, source);
      } catch (e) {
        throw new Error(`seed ${seed}: ${(e as Error).stack}`);
      }
    }
    console.log(`renderers fuzz: ${tried} random events, 150 seeds, every renderer`);
  });

  it("the named hostile events render as plain words", () => {
    const evs: StoredEvent[] = [
      { seq: 1, type: "message.part.updated", at: t0, data: { part: { type: "tool", callID: "c1", tool: "constructor", state: { status: "running", input: { command: "ls" } } } } },
      { seq: 2, type: "todo.updated", at: t0, data: { todos: [null, { content: 5, status: "constructor" }, { content: { toString: 1 }, status: "pending" }] } },
      { seq: 3, type: "session.status", at: t0, data: { status: { type: "busy" } } },
    ];
    const d = digestOf(fold(emptyFold(), evs));
    expect(d.currentAction).toBe("Using constructor ls");
    expect(d.todos).toEqual([{ content: "5", status: "constructor" }]);
    const html = renderEverything(d, "running", "slack")[0] as string;
    expect(html).toContain("Using constructor");
  });

  it("a long run keeps its newest timeline items; the page says how many earlier ones are not shown", () => {
    const evs: StoredEvent[] = Array.from({ length: TIMELINE_MAX + 120 }, (_, i) => ({
      seq: i + 1,
      type: "message.part.updated",
      at: t0,
      data: { part: { type: "tool", callID: `c${i}`, tool: "bash", state: { status: "completed", input: { command: `step ${i + 1}` } } } },
    }));
    const d = digestOf(fold(emptyFold(), evs));
    expect(d.timeline).toHaveLength(TIMELINE_MAX);
    expect(d.timelineDropped).toBe(120);
    expect(d.toolCalls).toBe(TIMELINE_MAX + 120);
    const html = renderEverything(d, "running", "cli")[0] as string;
    expect(html).toContain("120 earlier steps are not shown");
    expect(html).toContain(`step ${TIMELINE_MAX + 120}`);
    expect(html).not.toContain(">step 1<");
  });
});
