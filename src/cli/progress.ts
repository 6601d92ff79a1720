/** Pure formatting for the CLI: progress lines and the final summary. */
import type { TimelineItem } from "../events/vocabulary.ts";
import { plainPhase, plainStatus } from "../runs/plain-status.ts";
import type { RunView } from "../runs/run-view.ts";
import { describeFailure, isSettled } from "../runs/model.ts";

export const fmtDuration = (ms: number): string => {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
};

export function progressLine(v: RunView): string {
  const last = v.phases.at(-1)?.phase;
  const action = v.currentAction ?? (v.status === "running" ? "thinking" : last ? plainPhase(last) : plainStatus(v.status));
  return `[${fmtDuration(v.durationMs)}] ${plainStatus(v.status)}: ${action}`;
}

export function summary(v: RunView): string {
  const r = (v.result ?? {}) as {
    summary?: string | null;
    filesChanged?: { path: string; additions: number; deletions: number }[];
    pushed?: boolean;
    pushError?: string;
    pullRequestUrl?: string;
    url?: string;
  };
  const ok = v.status === "idle" || (v.status === "closed" && !!v.result);
  const lines: string[] = [];
  const why = ok ? null : describeFailure(v);
  lines.push(`${ok ? "✔ Done" : v.status === "cancelled" ? "■ Cancelled" : "✘ Failed"} (${plainStatus(v.status)}) in ${fmtDuration(v.durationMs)}${why ? `: ${why.reason}` : ""}`);
  if (why?.hint) lines.push(why.hint);
  if (r.summary) lines.push("", r.summary.length > 2000 ? `${r.summary.slice(0, 2000)}…` : r.summary, "");
  const files = r.filesChanged ?? [];
  if (files.length) {
    lines.push(`Files changed (${files.length}):`);
    for (const f of files) lines.push(`  ${f.path}  +${f.additions} -${f.deletions}`);
  } else if (ok) lines.push("No files changed.");
  const tokens = v.usage.input + v.usage.output + v.usage.reasoning;
  if (tokens) lines.push(`Tokens: ${tokens} (in ${v.usage.input}, out ${v.usage.output})${v.usage.cost ? `, cost $${v.usage.cost.toFixed(4)}` : ""}`);
  lines.push(`Branch: ${v.branch}${r.pushed ? " (pushed)" : r.pushError ? ` (not pushed: ${r.pushError})` : ""}`);
  if (r.pullRequestUrl) lines.push(`Pull request: ${r.pullRequestUrl}`);
  lines.push(`Run page: ${v.url}`);
  return lines.join("\n");
}

export function isDone(status: string): boolean {
  return isSettled(status);
}

export function exitCodeFor(v: RunView): number {
  if (v.status === "idle" || (v.status === "closed" && v.result)) return 0;
  return v.status === "cancelled" ? 130 : 1;
}

/** One timeline item as a log line; null for items not worth a line (an empty message). */
export function timelineLine(t: TimelineItem): string | null {
  const at = t.at.slice(11, 19);
  switch (t.kind) {
    case "tool":
      return `${at} ${t.call.verb} ${t.call.target}${t.call.status === "error" ? ` (failed${t.call.result ? `: ${t.call.result}` : ""})` : ""}`.trimEnd();
    case "message":
      return t.text.trim() ? `${at} ${t.role === "user" ? "you" : "agent"}: ${t.text.trim()}` : null;
    case "todo":
      return `${at} plan: ${t.todos.filter((x) => x.status === "completed").length}/${t.todos.length} done`;
    case "error":
      return `${at} error: ${t.message}`;
    case "status":
      return `${at} ${t.text}`;
  }
}

/** Pure: the key under which a timeline item is printed once (messages grow under one part id). */
export function timelineKey(t: TimelineItem): string {
  return t.kind === "message" ? `m:${t.partId}` : t.kind === "tool" ? `t:${t.call.callId}` : `${t.kind}:${t.seq}`;
}
