/** Words for the end of a run: the `response` (summary, files, link) and the `error`. Pure. */
import type { Run } from "../../db/schema.ts";
import type { RunDigest } from "../../events/vocabulary.ts";
import { describeFailure, type RunResult } from "../../runs/model.ts";
import { quoteAgent } from "../agent-words.ts";

const MAX_FILES = 15;

/** Where to look at the change: the pull request, else the diff on the run page. */
export function resultLink(result: Partial<RunResult> | null | undefined, runPageUrl: string): { label: string; url: string } {
  if (result?.pullRequestUrl) return { label: "Pull request", url: result.pullRequestUrl };
  if (result?.url) return { label: "Diff", url: result.url };
  return { label: "Diff", url: `${runPageUrl}#diff` };
}

export function responseBody(result: Partial<RunResult>, runPageUrl: string): string {
  const lines: string[] = [];
  lines.push(result.summary?.trim() ? quoteAgent(result.summary) : "Done.");
  const files = result.filesChanged ?? [];
  if (files.length) {
    lines.push("", `**Files changed** (+${result.additions ?? 0} −${result.deletions ?? 0}):`);
    for (const f of files.slice(0, MAX_FILES)) lines.push(`- \`${f.path}\` (+${f.additions} −${f.deletions})`);
    if (files.length > MAX_FILES) lines.push(`- …and ${files.length - MAX_FILES} more`);
  } else {
    lines.push("", "No files were changed.");
  }
  if (files.length) {
    const link = resultLink(result, runPageUrl);
    const branch = result.branch ? ` on branch \`${result.branch}\`` : "";
    lines.push("", `${link.label === "Pull request" ? `[Pull request](${link.url})` : `[See the diff](${link.url})`}${branch}`);
    if (result.pushed === false && result.pushError) lines.push(`The branch could not be pushed: ${result.pushError}`);
  }
  // The agent stopping on a problem (e.g. the run's budget: spent, limit, how to continue) and what the run used.
  if (result.error?.message) lines.push("", `⚠️ ${result.error.message}`);
  const u = result.usage;
  const tokens = u ? u.input + u.output + u.reasoning : 0;
  if (u && tokens) lines.push("", `Usage: ${tokens} tokens (${u.input} in, ${u.output} out)${u.cost > 0 ? `, $${u.cost < 0.01 ? u.cost.toFixed(4) : u.cost.toFixed(2)}` : ""}`);
  lines.push(`[Run details](${runPageUrl})`);
  return lines.join("\n");
}

export function errorBody(run: Pick<Run, "statusReason" | "failureCode">, d: Pick<RunDigest, "lastError">, runPageUrl: string): string {
  const { reason: known, hint } = describeFailure({ status: "failed", reason: run.statusReason, failureCode: run.failureCode ?? d.lastError?.code ?? null });
  const reason = run.statusReason?.trim() || d.lastError?.message || known;
  // Error details come from the sandbox: the agent's (or its tools') words, quoted and neutralised.
  const extra = d.lastError && d.lastError.message !== reason ? `\n\n${quoteAgent(d.lastError.message, "error")}` : "";
  return `The run failed: ${reason}${extra}${hint ? `\n\n${hint}` : ""}\n[Run details](${runPageUrl})`;
}

export function stoppedBody(run: Pick<Run, "statusReason">, result: Partial<RunResult> | null | undefined, runPageUrl: string): string {
  const by = run.statusReason?.trim() || "Stopped";
  const kept = result?.filesChanged?.length ? ` The change made before stopping is on branch \`${result.branch}\`.` : "";
  return `Stopped. ${by}.${kept}\n[Run details](${runPageUrl})`.replace(/\.\./g, ".");
}
