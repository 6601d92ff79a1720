/**
 * Folding a run's events into what people see, incrementally: `fold(state, events)` takes the state after the
 * events already folded and the next ones (in seq order) and returns the new state, which is plain JSON so the
 * receiver stores it once per batch (run_digests) and every reader (outbox, delivery, Slack, Linear, API, pages,
 * SSE) reads that instead of re-reading the events. `digestOf(state)` is the RunDigest of vocabulary.ts.
 * Pure, never throws on any JSON, and bounded: the timeline keeps its newest TIMELINE_MAX items.
 */
import { RELAY_EVENT } from "../relay/protocol.ts";
import { type PendingQuestion, questionFromEvent, questionLine, QUESTIONS_MAX, type SettledQuestion, settle, settledId, withQuestion } from "./questions.ts";
import { clip, num, obj, own, text } from "./safe.ts";
import { describeTool, explainError, firstLine, type ReasoningSnippet, type RunDigest, type StoredEvent, type TimelineItem, type Todo, type ToolStatus, type Usage } from "./vocabulary.ts";

export const TIMELINE_MAX = 500;
const ROLES_MAX = 2000;
const USAGE_MESSAGES_MAX = 200;
const TODOS_MAX = 200;
/** Reasoning kept for verbose surfaces: the newest snippets, each cut (the run page has the events). */
export const REASONING_MAX = 10;
export const REASONING_CHARS = 1500;

export interface FoldState {
  v: 1;
  lastSeq: number;
  timeline: TimelineItem[];
  timelineDropped: number;
  /** messageID → role, newest last. */
  roles: [string, string][];
  /** Usage per assistant message still being updated; older messages are summed into `usageSettled`. */
  usage: [string, Usage][];
  usageSettled: Usage;
  todos: Todo[];
  lastError: { message: string; code: string } | null;
  busy: boolean;
  current: string | null;
  lastAssistantWithText: string | null;
  toolCalls: number;
  /** The agent's questions and approval asks waiting for a person (questions.ts). */
  questions: PendingQuestion[];
  /** The last questions settled, newest last (surfaces edit their question messages to say how). */
  settled: SettledQuestion[];
  /** The agent's newest reasoning snippets (REASONING_MAX, each REASONING_CHARS at most), oldest first. */
  reasoning: ReasoningSnippet[];
}

const zeroUsage = (): Usage => ({ input: 0, output: 0, reasoning: 0, cacheRead: 0, cacheWrite: 0, cost: 0 });
const TOOL_STATUSES = new Set(["pending", "running", "completed", "error"]);

export function emptyFold(): FoldState {
  return { v: 1, lastSeq: 0, timeline: [], timelineDropped: 0, roles: [], usage: [], usageSettled: zeroUsage(), todos: [], lastError: null, busy: false, current: null, lastAssistantWithText: null, toolCalls: 0, questions: [], settled: [], reasoning: [] };
}

/** A stored state read back from the database (or anything else): a usable state, never a throw. */
export function loadFold(x: unknown): FoldState {
  const s = obj(x);
  if (s.v !== 1 || !Array.isArray(s.timeline)) return emptyFold();
  const state = { ...emptyFold(), ...(s as unknown as FoldState) };
  if (!Array.isArray(state.questions)) state.questions = [];
  if (!Array.isArray(state.settled)) state.settled = [];
  if (!Array.isArray(state.reasoning)) state.reasoning = [];
  return state;
}

const iso = (at: unknown): string => {
  if (at instanceof Date) return Number.isNaN(at.getTime()) ? new Date(0).toISOString() : at.toISOString();
  const t = Date.parse(text(at));
  return new Date(Number.isNaN(t) ? 0 : t).toISOString();
};

/** A todo list from the agent: only entries with text; content and status as short strings. */
export function cleanTodos(x: unknown): Todo[] {
  if (!Array.isArray(x)) return [];
  const out: Todo[] = [];
  for (const t of x.slice(0, TODOS_MAX)) {
    const content = text(own(t, "content")).slice(0, 500);
    if (!content.trim()) continue;
    const priority = text(own(t, "priority")).slice(0, 20);
    out.push({ content, status: text(own(t, "status")).slice(0, 40) || "pending", ...(priority ? { priority } : {}) });
  }
  return out;
}

function usageOf(info: Record<string, unknown>): Usage {
  const t = obj(own(info, "tokens"));
  const cache = obj(own(t, "cache"));
  return { input: num(t.input), output: num(t.output), reasoning: num(t.reasoning), cacheRead: num(own(cache, "read")), cacheWrite: num(own(cache, "write")), cost: num(own(info, "cost")) };
}

const add = (a: Usage, b: Usage): Usage => ({
  input: a.input + b.input,
  output: a.output + b.output,
  reasoning: a.reasoning + b.reasoning,
  cacheRead: a.cacheRead + b.cacheRead,
  cacheWrite: a.cacheWrite + b.cacheWrite,
  cost: a.cost + b.cost,
});

/** A reasoning part's newest text into the bounded list (in place): cut to REASONING_CHARS, the newest REASONING_MAX kept. */
function foldReasoning(list: ReasoningSnippet[], partId: string, body: string, done: boolean, seq: number, at: string): void {
  const cutText = clip(body, REASONING_CHARS);
  const existing = list.find((r) => r.partId === partId);
  if (existing) {
    existing.text = cutText;
    existing.done = existing.done || done;
    return;
  }
  if (!cutText.trim()) return;
  list.push({ partId, seq, at, text: cutText, done });
  if (list.length > REASONING_MAX) list.shift();
}

/** Fold `events` (seq order, each after state.lastSeq) into a copy of `state`. */
export function fold(state: FoldState, events: Iterable<StoredEvent>): FoldState {
  const s: FoldState = structuredClone(state);
  const roles = new Map(s.roles);
  const usage = new Map(s.usage);
  const tools = new Map<string, TimelineItem & { kind: "tool" }>();
  const texts = new Map<string, TimelineItem & { kind: "message" }>();
  for (const t of s.timeline) {
    if (t.kind === "tool") tools.set(t.call.callId, t);
    else if (t.kind === "message") texts.set(t.partId, t);
  }
  const push = (item: TimelineItem) => {
    s.timeline.push(item);
    if (s.timeline.length > TIMELINE_MAX) {
      const old = s.timeline.shift()!;
      s.timelineDropped++;
      if (old.kind === "tool") tools.delete(old.call.callId);
      else if (old.kind === "message") texts.delete(old.partId);
    }
  };

  for (const e of events) {
    const seq = num(e.seq);
    if (seq <= s.lastSeq) continue;
    s.lastSeq = seq;
    const at = iso(e.at);
    const d = obj(e.data);
    switch (e.type) {
      case "message.updated": {
        const info = obj(d.info);
        const id = text(info.id);
        const role = text(info.role);
        if (id && role) {
          roles.delete(id);
          roles.set(id, role);
          if (roles.size > ROLES_MAX) roles.delete(roles.keys().next().value!);
        }
        if (role === "assistant" && id && own(info, "tokens") !== undefined) {
          usage.delete(id);
          usage.set(id, usageOf(info));
          if (usage.size > USAGE_MESSAGES_MAX) {
            const [oldId, u] = usage.entries().next().value!;
            s.usageSettled = add(s.usageSettled, u);
            usage.delete(oldId);
          }
        }
        const err = own(info, "error");
        if (role === "assistant" && err && text(own(err, "name")) !== "MessageAbortedError") s.lastError = explainError(err);
        break;
      }
      case "message.part.updated": {
        const part = obj(d.part);
        const callId = text(part.callID);
        if (part.type === "tool" && callId) {
          const st = obj(part.state);
          const status = (TOOL_STATUSES.has(text(st.status)) ? text(st.status) : "pending") as ToolStatus;
          const tool = text(part.tool).slice(0, 100);
          const { verb, target } = describeTool(part.tool, st.input, status);
          const result = status === "error" ? firstLine(st.error) : status === "completed" ? firstLine(text(st.title) && tool !== "bash" ? "" : st.output) : undefined;
          const call = { callId, tool, status, verb, target, result: result || undefined, seq, at };
          const existing = tools.get(callId);
          if (existing) existing.call = { ...call, seq: existing.call.seq, at: existing.call.at };
          else {
            const item = { kind: "tool" as const, seq, at, call };
            tools.set(callId, item);
            push(item);
            s.toolCalls++;
          }
          if (tool === "todowrite" && Array.isArray(own(st.input, "todos"))) s.todos = cleanTodos(own(st.input, "todos"));
          if (status === "pending" || status === "running") s.current = `${verb}${target ? ` ${target}` : ""}`;
          else s.current = null;
        } else if (part.type === "text" && text(part.id)) {
          if (part.synthetic) break;
          const partId = text(part.id);
          const messageId = text(part.messageID);
          const role = roles.get(messageId) === "user" ? "user" : "assistant";
          const body = text(part.text);
          const existing = texts.get(partId);
          if (existing) {
            existing.text = body;
            existing.messageId = messageId;
          } else if (body) {
            const item = { kind: "message" as const, seq, at, role: role as "assistant" | "user", text: body, partId, messageId };
            texts.set(partId, item);
            push(item);
          }
          if (role === "assistant" && body.trim()) s.lastAssistantWithText = messageId;
        } else if (part.type === "reasoning" && text(part.id)) {
          foldReasoning(s.reasoning, text(part.id).slice(0, 120), text(part.text), num(own(part.time, "end")) > 0, seq, at);
        }
        break;
      }
      case "todo.updated":
        if (Array.isArray(d.todos)) {
          s.todos = cleanTodos(d.todos);
          push({ kind: "todo", seq, at, todos: s.todos });
        }
        break;
      case "session.status": {
        const st = obj(d.status);
        s.busy = st.type === "busy" || st.type === "retry";
        if (st.type === "retry") {
          push({ kind: "status", seq, at, text: `The model provider is failing; retrying (attempt ${firstLine(st.attempt, 20) || "?"}): ${firstLine(st.message)}` });
        }
        break;
      }
      case "session.idle":
        s.busy = false;
        s.current = null;
        break;
      case "session.error":
        if (d.error && text(own(d.error, "name")) !== "MessageAbortedError") {
          s.lastError = explainError(d.error);
          push({ kind: "error", seq, at, ...s.lastError });
        }
        break;
      case RELAY_EVENT.opencodeExited:
        s.lastError = { message: "The agent process (OpenCode) stopped unexpectedly", code: "agent_died" };
        push({ kind: "error", seq, at, ...s.lastError });
        break;
      case RELAY_EVENT.promptDelivered:
        s.busy = true;
        if (num(d.inputSeq) > 1) s.lastError = null;
        break;
      case RELAY_EVENT.agentIdle:
        s.busy = false;
        s.current = null;
        // An idle session waits on nobody: whatever was still asked ended with the turn.
        s.settled = [...s.settled, ...s.questions.map((q) => settle(q, "question.rejected", {}))].slice(-QUESTIONS_MAX);
        s.questions = [];
        break;
      case "question.asked":
      case "permission.asked": {
        const q = questionFromEvent(e.type, d, seq, at);
        if (q) {
          s.questions = withQuestion(s.questions, q);
          push({ kind: "status", seq, at, text: questionLine(q) });
        }
        break;
      }
      case "question.replied":
      case "question.rejected":
      case "permission.replied": {
        const id = settledId(e.type, d);
        const q = s.questions.find((x) => x.id === id);
        if (!q) break;
        s.questions = s.questions.filter((x) => x !== q);
        const done = settle(q, e.type, d);
        s.settled = [...s.settled, done].slice(-QUESTIONS_MAX);
        const how = done.answer ? `${done.how}: ${firstLine(done.answer, 200)}` : done.how;
        push({ kind: "status", seq, at, text: how });
        break;
      }
    }
  }
  // Re-read roles now that every message.updated is known (a user's text part can precede its message).
  for (const item of texts.values()) if (roles.get(item.messageId ?? "") === "user") item.role = "user";
  s.roles = [...roles];
  s.usage = [...usage];
  return s;
}

/** What people see, from a fold state. */
export function digestOf(s: FoldState): RunDigest {
  let total = s.usageSettled;
  for (const [, u] of s.usage) total = add(total, u);
  let finalText: string | null = null;
  const roles = new Map(s.roles);
  if (s.lastAssistantWithText && roles.get(s.lastAssistantWithText) !== "user") {
    finalText =
      s.timeline
        .filter((t): t is TimelineItem & { kind: "message" } => t.kind === "message" && t.messageId === s.lastAssistantWithText)
        .map((t) => t.text)
        .join("\n")
        .trim() || null;
  }
  const timeline = s.timeline.filter((t) => !(t.kind === "message" && !t.text.trim()));
  return {
    timeline,
    currentAction: s.busy ? s.current : null,
    todos: s.todos,
    finalText,
    lastError: s.lastError,
    usage: total,
    toolCalls: s.toolCalls,
    busy: s.busy,
    lastSeq: s.lastSeq,
    timelineDropped: s.timelineDropped,
    questions: s.questions,
    settledQuestions: s.settled,
    reasoning: s.reasoning,
  };
}

/** Fold a whole list of events at once (tests, and runs without a stored digest). */
export function digest(events: StoredEvent[]): RunDigest {
  return digestOf(fold(emptyFold(), events));
}
