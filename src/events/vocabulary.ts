/**
 * The one event vocabulary. Stored run events are OpenCode's own (forwarded by the relay) plus the relay's
 * `deckhand.*` events. Everything that shows a run to a person (CLI, run page, Slack, Linear) reads them
 * through these pure functions, so "what happened" is decided in one place.
 */
import { RELAY_EVENT } from "../relay/protocol.ts";

export interface StoredEvent {
  seq: number;
  type: string;
  at: Date | string;
  data: Record<string, any>;
}

export type ToolStatus = "pending" | "running" | "completed" | "error";

export interface ToolCall {
  callId: string;
  tool: string;
  status: ToolStatus;
  /** "Edited", "Ran", "Read", ... (past tense) or "Editing", "Running" ... while it runs. */
  verb: string;
  /** What it acted on: a path, a command, a pattern. */
  target: string;
  /** Short result for people (first line of output, error message). */
  result?: string;
  seq: number;
  at: string;
}

export interface Todo {
  content: string;
  status: string;
  priority?: string;
}

export interface Usage {
  input: number;
  output: number;
  reasoning: number;
  cacheRead: number;
  cacheWrite: number;
  cost: number;
}

/** One readable line of a run's timeline. */
export type TimelineItem =
  | { kind: "tool"; seq: number; at: string; call: ToolCall }
  | { kind: "message"; seq: number; at: string; role: "assistant" | "user"; text: string; partId: string }
  | { kind: "todo"; seq: number; at: string; todos: Todo[] }
  | { kind: "error"; seq: number; at: string; message: string; code: string }
  | { kind: "status"; seq: number; at: string; text: string };

export interface RunDigest {
  timeline: TimelineItem[];
  /** What the agent is doing now, for a status line: "Editing src/app.ts". */
  currentAction: string | null;
  todos: Todo[];
  /** The agent's last answer (text of the last assistant message that has text). */
  finalText: string | null;
  lastError: { message: string; code: string } | null;
  usage: Usage;
  toolCalls: number;
  busy: boolean;
  lastSeq: number;
}

const iso = (at: Date | string) => (typeof at === "string" ? at : at.toISOString());
const firstLine = (s: unknown, n = 160) => {
  const line = String(s ?? "")
    .split("\n")
    .map((l) => l.trim())
    .find(Boolean);
  return line ? (line.length > n ? `${line.slice(0, n - 1)}…` : line) : "";
};

/** Relative, readable path: strips the sandbox's repo prefix. */
export function shortPath(p: unknown): string {
  const s = String(p ?? "");
  const m = s.match(/\/(?:workspace\/)?repo\/(.*)$/);
  return m ? m[1]! : s;
}

const VERBS: Record<string, [string, string]> = {
  write: ["Writing", "Wrote"],
  edit: ["Editing", "Edited"],
  patch: ["Editing", "Edited"],
  multiedit: ["Editing", "Edited"],
  read: ["Reading", "Read"],
  bash: ["Running", "Ran"],
  glob: ["Searching files for", "Searched files for"],
  grep: ["Searching for", "Searched for"],
  list: ["Listing", "Listed"],
  webfetch: ["Fetching", "Fetched"],
  websearch: ["Searching the web for", "Searched the web for"],
  todowrite: ["Updating the plan", "Updated the plan"],
  task: ["Delegating", "Delegated"],
  skill: ["Loading skill", "Loaded skill"],
  question: ["Asking", "Asked"],
};

/** "Editing src/app.ts" / "Ran npm test": a tool call in plain words. */
export function describeTool(tool: string, input: Record<string, any> | undefined, status: ToolStatus): { verb: string; target: string } {
  const i = input ?? {};
  const [ing, ed] = VERBS[tool] ?? [`Using ${tool}`, `Used ${tool}`];
  const verb = status === "completed" || status === "error" ? ed : ing;
  let target = "";
  if (i.filePath || i.path) target = shortPath(i.filePath ?? i.path);
  else if (i.command) target = firstLine(i.command, 120);
  else if (i.pattern) target = String(i.pattern);
  else if (i.url) target = String(i.url);
  else if (i.query) target = String(i.query);
  else if (i.description) target = firstLine(i.description, 80);
  if (tool === "todowrite") target = "";
  return { verb, target };
}

/** A failure in plain words, from OpenCode's session error shape. */
export function explainError(err: any): { message: string; code: string } {
  const name = String(err?.name ?? "");
  const data = err?.data ?? {};
  const status = Number(data.statusCode ?? 0);
  const detail = firstLine(data.message ?? err?.message ?? name, 200);
  if (name === "MessageAbortedError") return { message: "The agent was stopped", code: "aborted" };
  // The model gateway refusing a call over budget: its message says spent, limit and how to continue.
  if (status === 402) return { message: detail || "The run reached its budget", code: "over_budget" };
  if (name === "ProviderAuthError" || status === 401 || status === 403)
    return { message: `The model provider rejected the API key${detail ? ` (${detail})` : ""}`, code: "model_auth" };
  if (status === 429) return { message: `The model provider is rate limiting requests${detail ? ` (${detail})` : ""}`, code: "model_rate_limit" };
  if (status === 404) return { message: `The model provider does not know this model${detail ? ` (${detail})` : ""}`, code: "model_not_found" };
  if (status >= 500) return { message: `The model provider failed (${status}${detail ? `: ${detail}` : ""})`, code: "model_unavailable" };
  if (/context|too long|maximum context/i.test(detail)) return { message: `The conversation no longer fits the model's context (${detail})`, code: "context_overflow" };
  return { message: detail || "The agent reported an error", code: "agent_error" };
}

const zeroUsage = (): Usage => ({ input: 0, output: 0, reasoning: 0, cacheRead: 0, cacheWrite: 0, cost: 0 });

/** Fold a run's events (in seq order) into what people see. Pure. */
export function digest(events: StoredEvent[]): RunDigest {
  const roles = new Map<string, string>();
  const tools = new Map<string, TimelineItem & { kind: "tool" }>();
  const texts = new Map<string, TimelineItem & { kind: "message" }>();
  const textMessage = new Map<string, string>();
  const usageByMessage = new Map<string, Usage>();
  const timeline: TimelineItem[] = [];
  let todos: Todo[] = [];
  let lastError: RunDigest["lastError"] = null;
  let busy = false;
  let current: string | null = null;
  let lastAssistantWithText: string | null = null;
  let lastSeq = 0;

  for (const e of events) {
    lastSeq = Math.max(lastSeq, e.seq);
    const at = iso(e.at);
    const d = e.data ?? {};
    switch (e.type) {
      case "message.updated": {
        const info = d.info ?? {};
        if (info.id && info.role) roles.set(info.id, info.role);
        if (info.role === "assistant" && info.tokens) {
          const t = info.tokens;
          usageByMessage.set(info.id, {
            input: t.input ?? 0,
            output: t.output ?? 0,
            reasoning: t.reasoning ?? 0,
            cacheRead: t.cache?.read ?? 0,
            cacheWrite: t.cache?.write ?? 0,
            cost: Number(info.cost ?? 0),
          });
        }
        if (info.role === "assistant" && info.error && info.error.name !== "MessageAbortedError") lastError = explainError(info.error);
        break;
      }
      case "message.part.updated": {
        const part = d.part ?? {};
        if (part.type === "tool" && part.callID) {
          const st = part.state ?? {};
          const status = (st.status ?? "pending") as ToolStatus;
          const { verb, target } = describeTool(part.tool, st.input, status);
          const result = status === "error" ? firstLine(st.error) : status === "completed" ? firstLine(st.title && part.tool !== "bash" ? "" : st.output) : undefined;
          const call: ToolCall = { callId: part.callID, tool: part.tool, status, verb, target, result: result || undefined, seq: e.seq, at };
          const existing = tools.get(part.callID);
          if (existing) existing.call = { ...call, seq: existing.call.seq, at: existing.call.at };
          else {
            const item = { kind: "tool" as const, seq: e.seq, at, call };
            tools.set(part.callID, item);
            timeline.push(item);
          }
          if (part.tool === "todowrite" && Array.isArray(st.input?.todos)) todos = st.input.todos;
          current = status === "pending" || status === "running" ? `${verb}${target ? ` ${target}` : ""}` : current;
          if (status === "completed" || status === "error") current = null;
        } else if (part.type === "text" && part.id) {
          const role = roles.get(part.messageID) === "user" ? "user" : "assistant";
          if (part.synthetic) break;
          const text = String(part.text ?? "");
          textMessage.set(part.id, part.messageID);
          const existing = texts.get(part.id);
          if (existing) existing.text = text;
          else if (text) {
            const item = { kind: "message" as const, seq: e.seq, at, role: role as "assistant" | "user", text, partId: part.id };
            texts.set(part.id, item);
            timeline.push(item);
          }
          if (role === "assistant" && text.trim()) lastAssistantWithText = part.messageID;
        }
        break;
      }
      case "todo.updated":
        if (Array.isArray(d.todos)) {
          todos = d.todos;
          timeline.push({ kind: "todo", seq: e.seq, at, todos });
        }
        break;
      case "session.status":
        busy = d.status?.type === "busy" || d.status?.type === "retry";
        if (d.status?.type === "retry") {
          timeline.push({ kind: "status", seq: e.seq, at, text: `The model provider is failing; retrying (attempt ${d.status.attempt ?? "?"}): ${firstLine(d.status.message)}` });
        }
        break;
      case "session.idle":
        busy = false;
        current = null;
        break;
      case "session.error":
        if (d.error && d.error.name !== "MessageAbortedError") {
          lastError = explainError(d.error);
          timeline.push({ kind: "error", seq: e.seq, at, ...lastError });
        }
        break;
      case RELAY_EVENT.opencodeExited:
        lastError = { message: "The agent process (OpenCode) stopped unexpectedly", code: "agent_died" };
        timeline.push({ kind: "error", seq: e.seq, at, ...lastError });
        break;
      case RELAY_EVENT.promptDelivered:
        busy = true;
        if (Number(d.inputSeq) > 1) lastError = null;
        break;
      case RELAY_EVENT.agentIdle:
        busy = false;
        current = null;
        break;
    }
  }
  // Re-read roles now that every message.updated is known (a user's text part can precede its message).
  for (const item of texts.values()) {
    const role = roles.get(textMessage.get(item.partId) ?? "");
    if (role === "user") item.role = "user";
  }
  const usage = zeroUsage();
  for (const u of usageByMessage.values()) {
    usage.input += u.input;
    usage.output += u.output;
    usage.reasoning += u.reasoning;
    usage.cacheRead += u.cacheRead;
    usage.cacheWrite += u.cacheWrite;
    usage.cost += u.cost;
  }
  let finalText: string | null = null;
  if (lastAssistantWithText && roles.get(lastAssistantWithText) !== "user") {
    finalText = [...texts.values()]
      .filter((t) => textMessage.get(t.partId) === lastAssistantWithText)
      .map((t) => t.text)
      .join("\n")
      .trim() || null;
  }
  const visible = timeline.filter((t) => !(t.kind === "message" && !t.text.trim()));
  return { timeline: visible, currentAction: busy ? current : null, todos, finalText, lastError, usage, toolCalls: tools.size, busy, lastSeq };
}

/** OpenCode event types worth storing (the relay drops the rest). */
export function isNoise(type: string): boolean {
  return (
    type === "server.heartbeat" ||
    type === "server.connected" ||
    type === "file.watcher.updated" ||
    type === "message.part.delta" ||
    type === "plugin.added" ||
    type === "catalog.updated" ||
    type === "reference.updated" ||
    type === "integration.updated" ||
    type === "session.diff"
  );
}
