/**
 * Classic path: comments are the conversation. A reply in a run's thread steers it (continues it when idle, or
 * starts a continuation on the same branch when it is over); "stop" stops it; a reply to "which repo?" starts it.
 * While the agent waits on a question (asked in the thread, questions.ts), a reply there answers it.
 */
import { commandOf } from "../../intake/decide.ts";
import type { Run } from "../../db/schema.ts";
import { runLog } from "../../log/logger.ts";
import { answerQuestion, openQuestions } from "../../runs/answers.ts";
import { isTerminal } from "../../runs/model.ts";
import { RunInputError } from "../../runs/run-service.ts";
import { neutralizeAgentMarkdown } from "../agent-words.ts";
import { continuationPrompt } from "./build-prompt.ts";
import { repoFromAnswer } from "./choose-repo.ts";
import type { LinearDeps } from "./deps.ts";
import { classicRunsForIssue, pendingStart } from "./find-runs.ts";
import { threadCommentId } from "./plan-messages.ts";
import { linearRef, orderingKeyOf } from "./source-ref.ts";
import { stableUuid } from "./stable-uuid.ts";
import { askForRepo, startLinearRun } from "./start-linear-run.ts";

export type CommentTarget = { kind: "run"; run: Run } | { kind: "answer" } | null;

/** Which conversation a new comment belongs to (runs newest first). Pure. */
export function commentTarget(comment: { parentId?: string | null }, runs: Run[], hasPendingAsk: boolean): CommentTarget {
  const inThread = runs.find((r) => comment.parentId && threadCommentId(r.id) === comment.parentId);
  if (inThread) return { kind: "run", run: inThread };
  if (!runs.length && hasPendingAsk) return { kind: "answer" };
  return null;
}

export async function onCommentCreated(deps: LinearDeps, payload: any, target: Exclude<CommentTarget, null>): Promise<void> {
  const d = payload.data ?? {};
  const text = String(d.body ?? "").trim();
  const author = d.user?.name ?? payload.actor?.name ?? d.userId ?? null;
  if (!text) return;
  if (target.kind === "answer") {
    const asked = await pendingStart(deps.db, { issueId: String(d.issueId) });
    if (!asked) return;
    const allowed = deps.service.repos.names();
    const repo = repoFromAnswer(text, allowed);
    if (!repo) return void (await askForRepo(deps, asked.pending, { repo: null, reason: "none", allowed }, `linear:ask:${d.id}`));
    await startLinearRun(deps, asked.pending, { repo, dedupe: `comment:${d.id}` });
    return;
  }
  const run = target.run;
  if (commandOf(text) === "stop") {
    if (!isTerminal(run.status)) await deps.service.stop(run.id, { author, source: "linear" });
    return;
  }
  if (await answeredInThread(deps, run, String(d.id ?? ""), text, author)) return;
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

/** Answers the run's oldest open question with a reply from its thread; false when nothing is asked (the reply steers). */
async function answeredInThread(deps: LinearDeps, run: Run, commentId: string, text: string, author: string | null): Promise<boolean> {
  if (run.status !== "running") return false;
  const [q] = await openQuestions(deps.service.store, run.id);
  if (!q) return false;
  let body: string;
  try {
    const done = await answerQuestion(deps.service.store, run.id, q.id, { answer: text }, { author, source: "linear" });
    runLog(deps.log, run.id).info({ questionId: q.id, kind: q.kind }, "question answered from a Linear comment");
    body = q.kind === "permission" ? `${done.summary}; passing that to the agent.` : "Got your answer; passing it to the agent.";
  } catch (e) {
    if (!(e instanceof RunInputError)) throw e;
    // The message may name the agent's options: its words, made inert.
    body = `That didn't answer the agent's question: ${neutralizeAgentMarkdown(e.message)}.`;
  }
  // Said in the run's thread, through the outbox (in order with the rest of the thread, retried).
  const ref = linearRef(run)!;
  const key = `linear:${run.id}:answer:${commentId || stableUuid(text)}`;
  await deps.outbox.enqueue(run.id, "linear", [
    {
      dedupeKey: key,
      orderingKey: orderingKeyOf(ref),
      kind: "comment",
      payload: { op: "comment", workspaceId: ref.workspaceId, issueId: ref.issueId, id: stableUuid(key), body, parentId: threadCommentId(run.id) },
    },
  ]);
  deps.outbox.kick();
  return true;
}

export async function classifyComment(deps: LinearDeps, payload: any): Promise<CommentTarget> {
  const d = payload.data ?? {};
  if (payload.action !== "create" || !d.issueId || d.botActor) return null;
  const bots = await deps.clients.botUserIds(payload.organizationId);
  if (d.userId && bots.includes(d.userId)) return null;
  const runs = await classicRunsForIssue(deps.db, String(d.issueId));
  const asked = runs.length ? null : await pendingStart(deps.db, { issueId: String(d.issueId) });
  return commentTarget(d, runs, !!asked);
}
