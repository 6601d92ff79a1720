/**
 * Classic path: comments are the conversation. A reply in a run's thread steers it (continues it when idle, or
 * starts a continuation on the same branch when it is over); "stop" stops it; a reply to "which repo?" starts it.
 */
import { commandOf } from "../../intake/decide.ts";
import type { Run } from "../../db/schema.ts";
import { isTerminal } from "../../runs/model.ts";
import { continuationPrompt } from "./build-prompt.ts";
import { repoFromAnswer } from "./choose-repo.ts";
import type { LinearDeps } from "./deps.ts";
import { pendingStart, runOfCommentThread } from "./find-runs.ts";
import { linearRef } from "./source-ref.ts";
import { askForRepo, startLinearRun } from "./start-linear-run.ts";

export type CommentTarget = { kind: "run"; run: Run } | { kind: "answer" } | null;

/**
 * Which conversation a new comment belongs to: the run whose comment thread it replies in (found by the thread's
 * first comment), else the "which repo?" asked on the issue, if one waits for an answer. Pure.
 */
export function commentTarget(comment: { issueId?: string | null }, threadRun: Run | null, hasPendingAsk: boolean): CommentTarget {
  if (threadRun && linearRef(threadRun)?.issueId === comment.issueId) return { kind: "run", run: threadRun };
  if (hasPendingAsk) return { kind: "answer" };
  return null;
}

export async function onCommentCreated(deps: LinearDeps, payload: any, target: Exclude<CommentTarget, null>): Promise<void> {
  const d = payload.data ?? {};
  const text = String(d.body ?? "").trim();
  const author = d.user?.name ?? payload.actor?.name ?? d.userId ?? null;
  if (!text) return;
  if (target.kind === "answer") {
    const asked = await pendingStart(deps, { issueId: String(d.issueId) });
    if (!asked) return;
    const allowed = deps.service.repos.names();
    const repo = repoFromAnswer(text, allowed);
    if (!repo) return void (await askForRepo(deps, asked, { repo: null, reason: "none", allowed }, `linear:ask:${d.id}`));
    await startLinearRun(deps, asked, { repo, dedupe: `comment:${d.id}` });
    return;
  }
  const run = target.run;
  if (commandOf(text) === "stop") {
    if (!isTerminal(run.status)) await deps.service.stop(run.id, { author, source: "linear" });
    return;
  }
  if (!isTerminal(run.status)) {
    await deps.service.followUp(run.id, { text, author, source: "linear" });
    return;
  }
  const ref = linearRef(run)!;
  await startLinearRun(
    deps,
    { workspaceId: ref.workspaceId, mode: "classic", issueId: ref.issueId, identifier: ref.identifier, title: run.title.replace(/^[^:]+:\s*/, ""), url: ref.issueUrl, teamId: ref.teamId, author },
    { repo: run.repo, dedupe: `comment:${d.id}`, continueFrom: run, prompt: continuationPrompt(run.prompt, text) },
  );
}

export async function classifyComment(deps: LinearDeps, payload: any): Promise<CommentTarget> {
  const d = payload.data ?? {};
  if (payload.action !== "create" || !d.issueId || d.botActor) return null;
  const bots = await deps.clients.botUserIds(payload.organizationId);
  if (d.userId && bots.includes(d.userId)) return null;
  const run = typeof d.parentId === "string" && d.parentId ? await runOfCommentThread(deps, d.parentId) : null;
  const asked = run ? null : await pendingStart(deps, { issueId: String(d.issueId) });
  return commentTarget({ issueId: String(d.issueId) }, run, !!asked);
}
