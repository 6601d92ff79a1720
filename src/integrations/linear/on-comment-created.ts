/**
 * Classic path: comments are the conversation. A reply in a run's thread steers it (continues it when idle, or
 * starts a continuation on the same branch when it is over); `stop`, `status` and `help` are commands, the same
 * words as on every surface (decideIntake); a reply to "which repo?" starts it. While the agent waits on a
 * question (asked in the thread, questions.ts), a reply there answers it.
 */
import { decideIntake } from "../../intake/decide.ts";
import type { PendingQuestion } from "../../events/questions.ts";
import type { Run } from "../../db/schema.ts";
import { runLog } from "../../log/logger.ts";
import { answerQuestion, openQuestions } from "../../runs/answers.ts";
import { RunInputError } from "../../runs/run-service.ts";
import { neutralizeAgentMarkdown } from "../agent-words.ts";
import { continuationPrompt } from "./build-prompt.ts";
import { repoFromAnswer } from "./choose-repo.ts";
import type { LinearDeps } from "./deps.ts";
import { pendingStart, runOfCommentThread } from "./find-runs.ts";
import { threadCommentId } from "./plan-messages.ts";
import { linearRef, orderingKeyOf } from "./source-ref.ts";
import { stableUuid } from "./stable-uuid.ts";
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

const HELP = "Reply in this thread to steer the agent or to continue when it is done; `status` says where the run is; `stop` stops it.";

export async function onCommentCreated(deps: LinearDeps, payload: any, target: Exclude<CommentTarget, null>): Promise<void> {
  const d = payload.data ?? {};
  const text = String(d.body ?? "").trim();
  const author = d.user?.name ?? payload.actor?.name ?? d.userId ?? null;
  const commentId = String(d.id ?? "");
  if (!text) return;
  const run = target.kind === "run" ? target.run : null;
  const [question] = run?.status === "running" ? await openQuestions(deps.service.store, run.id) : [];
  // The same intake as every surface: one list of command words, one continuation policy.
  const decision = decideIntake({ text, addressed: true }, { run, askedRepo: target.kind === "answer", agentAsking: !!question, repo: run?.repo ?? null });
  const say = (body: string) => (run ? sayInThread(deps, run, `linear:${run.id}:said:${commentId || stableUuid(text)}`, body) : Promise.resolve());
  switch (decision.kind) {
    case "ignore":
    case "ask_repo": // a run's conversation always knows its repo
      return;
    case "stop":
      if (run && decision.running) return void (await deps.service.stop(run.id, { author, source: "linear" }));
      return say(run ? `Nothing to stop: this run is already ${run.status}.` : "Nothing to stop.");
    case "status":
      return say(run ? `The run is ${run.status}${run.statusReason ? ` (${neutralizeAgentMarkdown(run.statusReason)})` : ""}: ${deps.service.runPageUrl(run)}` : "There is no run here yet.");
    case "help":
      return say(HELP);
    case "agent_answer":
      return answerInThread(deps, run!, question!, commentId, text, author);
    case "steer":
    case "continue":
      await deps.service.followUp(run!.id, { text, author, source: "linear" });
      return;
    case "repo_answer": {
      const asked = await pendingStart(deps, { issueId: String(d.issueId) });
      if (!asked) return;
      const allowed = deps.service.repos.names();
      const repo = repoFromAnswer(text, allowed);
      if (!repo) return void (await askForRepo(deps, asked, { repo: null, reason: "none", allowed }, `linear:ask:${d.id}`));
      await startLinearRun(deps, asked, { repo, dedupe: `comment:${d.id}` });
      return;
    }
    case "start": {
      // The run is over: a reply starts a new run in a new thread, continuing its branch (continuationOf).
      const ref = linearRef(run!)!;
      await startLinearRun(
        deps,
        { workspaceId: ref.workspaceId, mode: "classic", issueId: ref.issueId, identifier: ref.identifier, title: run!.title.replace(/^[^:]+:\s*/, ""), url: ref.issueUrl, teamId: ref.teamId, author },
        { repo: run!.repo, dedupe: `comment:${d.id}`, continueFrom: run!, prompt: continuationPrompt(run!.prompt, text) },
      );
      return;
    }
  }
}

/** Answers the run's oldest open question with a reply from its thread, and says so in the thread. */
async function answerInThread(deps: LinearDeps, run: Run, q: PendingQuestion, commentId: string, text: string, author: string | null): Promise<void> {
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
  await sayInThread(deps, run, `linear:${run.id}:answer:${commentId || stableUuid(text)}`, body);
}

/** Said in the run's comment thread, through the outbox (in order with the rest of the thread, retried). */
async function sayInThread(deps: LinearDeps, run: Run, key: string, body: string): Promise<void> {
  const ref = linearRef(run)!;
  await deps.outbox.enqueue(run.id, "linear", [
    {
      dedupeKey: key,
      orderingKey: orderingKeyOf(ref),
      kind: "comment",
      payload: { op: "comment", workspaceId: ref.workspaceId, issueId: ref.issueId, id: stableUuid(key), body, parentId: threadCommentId(run.id) },
    },
  ]);
  deps.outbox.kick();
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
