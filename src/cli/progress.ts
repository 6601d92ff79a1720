/** Pure formatting for the CLI: progress lines and the final summary. */
import type { RunView } from "../runs/run-view.ts";

export const fmtDuration = (ms: number): string => {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
};

export function progressLine(v: RunView): string {
  const action = v.currentAction ?? (v.status === "running" ? "thinking" : v.phases.at(-1)?.phase.replace(/_/g, " ") ?? v.status);
  return `[${fmtDuration(v.durationMs)}] ${v.status}: ${action}`;
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
  lines.push(`${ok ? "✔ Done" : v.status === "cancelled" ? "■ Cancelled" : "✘ Failed"} (${v.status}) in ${fmtDuration(v.durationMs)}${v.reason && !ok ? `: ${v.reason}` : ""}`);
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
  return ["idle", "closed", "failed", "cancelled"].includes(status);
}

export function exitCodeFor(v: RunView): number {
  if (v.status === "idle" || (v.status === "closed" && v.result)) return 0;
  return v.status === "cancelled" ? 130 : 1;
}
