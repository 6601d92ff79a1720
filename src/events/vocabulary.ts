/**
 * The one event vocabulary. Stored run events are OpenCode's own (forwarded by the relay) plus the relay's
 * `deckhand.*` events. Everything that shows a run to a person (CLI, run page, Slack, Linear) reads them
 * through these pure functions, so "what happened" is decided in one place. The fold itself is in fold.ts.
 * Every field of an event was written by the agent: read them with safe.ts, never as trusted shapes.
 */
import type { PendingQuestion, SettledQuestion } from "./questions.ts";
import { clip, lookup, obj, own, text } from "./safe.ts";

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
  | { kind: "message"; seq: number; at: string; role: "assistant" | "user"; text: string; partId: string; messageId?: string }
  | { kind: "todo"; seq: number; at: string; todos: Todo[] }
  | { kind: "error"; seq: number; at: string; message: string; code: string }
  | { kind: "status"; seq: number; at: string; text: string };

/** A piece of the agent's reasoning (a `reasoning` part), cut short: only verbose surfaces show it. */
export interface ReasoningSnippet {
  partId: string;
  seq: number;
  at: string;
  /** At most REASONING_CHARS of the agent's text, as written (show it made inert). */
  text: string;
  /** The model finished this part (its text will not grow). */
  done: boolean;
}

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
  /** Timeline items dropped from the front to keep the digest bounded (the newest are kept). */
  timelineDropped: number;
  /** The agent's questions and approval asks waiting for a person, oldest first. */
  questions: PendingQuestion[];
  /** The last questions settled (answered, given up, approved, rejected), newest last. */
  settledQuestions: SettledQuestion[];
  /** The agent's last REASONING_MAX reasoning snippets, oldest first. */
  reasoning: ReasoningSnippet[];
}

export const firstLine = (s: unknown, n = 160) => {
  const line = text(s)
    .split("\n")
    .map((l) => l.trim())
    .find(Boolean);
  return line ? clip(line, n) : "";
};

/** Relative, readable path: strips the sandbox's repo prefix. */
export function shortPath(p: unknown): string {
  const s = text(p);
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
export function describeTool(tool: unknown, input: unknown, status: ToolStatus): { verb: string; target: string } {
  const i = obj(input);
  const name = firstLine(tool, 60) || "a tool";
  const [ing, ed] = lookup(VERBS, tool) ?? [`Using ${name}`, `Used ${name}`];
  const verb = status === "completed" || status === "error" ? ed : ing;
  const field = (k: string) => text(own(i, k));
  let target = "";
  if (field("filePath") || field("path")) target = shortPath(field("filePath") || field("path")).slice(0, 300);
  else if (field("command")) target = firstLine(field("command"), 120);
  else if (field("pattern")) target = firstLine(field("pattern"), 200);
  else if (field("url")) target = firstLine(field("url"), 300);
  else if (field("query")) target = firstLine(field("query"), 200);
  else if (field("description")) target = firstLine(field("description"), 80);
  if (tool === "todowrite") target = "";
  return { verb, target };
}

/** A failure in plain words, from OpenCode's session error shape. */
export function explainError(err: unknown): { message: string; code: string } {
  const name = text(own(err, "name"));
  const data = own(err, "data");
  const status = Number(text(own(data, "statusCode")) || 0);
  const detail = firstLine(text(own(data, "message")) || text(own(err, "message")) || name, 200);
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
