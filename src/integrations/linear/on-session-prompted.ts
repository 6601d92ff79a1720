/**
 * `AgentSessionEvent` / `prompted`: the user wrote in the session. The shared intake (src/intake) decides: steer a
 * working run, continue an idle one (or a finished one, on the same branch), answer a "which repo?" question,
 * start a run for a session we never saw, stop (the `stop` signal or a stop word), or say where the run is. While
 * the agent waits on a question (a `select` elicitation, questions.ts), what the person writes answers it.
 */
import type { Run } from "../../db/schema.ts";
import { decideIntake } from "../../intake/decide.ts";
import { runLog } from "../../log/logger.ts";
import type { PendingQuestion } from "../../events/questions.ts";
import { answerQuestion, openQuestions } from "../../runs/answers.ts";
import { RunInputError } from "../../runs/run-service.ts";
import { neutralizeAgentMarkdown } from "../agent-words.ts";
import { continuationPrompt } from "./build-prompt.ts";
import { repoFromAnswer } from "./choose-repo.ts";
import type { LinearDeps } from "./deps.ts";
import { latestRunForSession, pendingStart } from "./find-runs.ts";
import type { PendingStart } from "./messages.ts";
import { joinedRunningIssue, pendingFromSession } from "./on-session-created.ts";
import { sayWithoutRun } from "./say-without-run.ts";
import { linearRef } from "./source-ref.ts";
import { stableUuid } from "./stable-uuid.ts";
import { askForRepo, repoChoiceFor, startLinearRun } from "./start-linear-run.ts";

const HELP = "Write here to steer the agent or to continue when it is done; `status` says where the run is; `stop` stops it.";

export async function onSessionPrompted(deps: LinearDeps, payload: any): Promise<void> {
  const sessionId = String(payload.agentSession?.id ?? "");
  const activity = payload.agentActivity ?? {};
  const text = String(activity.content?.body ?? activity.body ?? "").trim();
  // Without an activity id, what the activity says and when names it (never "" shared by every such prompt).
  const activityId = String(activity.id ?? "") || `x-${stableUuid(JSON.stringify([sessionId, activity.createdAt ?? payload.createdAt ?? payload.webhookTimestamp, text, activity.signal]))}`;
  const author = activity.user?.name ?? activity.userId ?? null;
  const run = await latestRunForSession(deps, sessionId);
  const asked = run ? null : await pendingStart(deps, { sessionId });
  const fresh: PendingStart = { ...pendingFromSession(payload), request: text, promptContext: null, author };
  const repo = run ? run.repo : asked ? null : repoChoiceFor(deps, fresh, payload.agentSession?.issue?.team?.key ?? null).repo;
  const [question] = run?.status === "running" ? await openQuestions(deps.service.store, run.id) : [];
  const decision = decideIntake({ text, stopSignal: activity.signal === "stop", addressed: true }, { run, askedRepo: !!asked, agentAsking: !!question, repo });
  const to = { workspaceId: String(payload.organizationId ?? ""), mode: "agent" as const, sessionId, issueId: String(payload.agentSession?.issueId ?? "") };
  const say = (body: string, type: "thought" | "response" = "thought") => sayWithoutRun(deps, to, `linear:say:${sessionId}:${activityId}`, { type, body });

  switch (decision.kind) {
    case "stop":
      if (run && decision.running) return void (await deps.service.stop(run.id, { author, source: "linear" }));
      return say("Stopped. Nothing was running.", "response");
    case "status":
      // The reason may carry the agent's or a person's words (a failure, "Stopped by ..."): made inert.
      return say(run ? `The run is ${run.status}${run.statusReason ? ` (${neutralizeAgentMarkdown(run.statusReason)})` : ""}: ${deps.service.runPageUrl(run)}` : "There is no run in this session yet.");
    case "help":
      return say(HELP);
    case "ignore":
      return;
    case "agent_answer":
      // The agent asked something in this session: the pick (or the person's words) answers its oldest question.
      return answerAgent(deps, run!, question!, text, author, say);
    case "steer":
    case "continue": {
      await deps.service.followUp(run!.id, { text, author, source: "linear" });
      const ref = linearRef(run!)!;
      const key = `linear:${run!.id}:ack:${activityId}`;
      await deps.outbox.enqueue(run!.id, "linear", [
        {
          dedupeKey: key,
          orderingKey: `linear:session:${sessionId}`,
          kind: "activity.thought",
          payload: {
            op: "activity",
            workspaceId: ref.workspaceId,
            sessionId,
            id: stableUuid(key),
            content: { type: "thought", body: decision.kind === "continue" ? `Continuing on branch ${run!.branch}…` : "Got it; passing that to the agent." },
            ephemeral: true,
          },
        },
      ]);
      deps.outbox.kick();
      return;
    }
    case "start":
    case "ask_repo": {
      if (run) {
        // Finished (closed, failed, cancelled): a new run continues on the same branch.
        const ref = linearRef(run)!;
        const p: PendingStart = { workspaceId: ref.workspaceId, mode: "agent", sessionId, issueId: ref.issueId, identifier: ref.identifier, title: run.title.replace(/^[^:]+:\s*/, ""), url: ref.issueUrl, teamId: ref.teamId, author };
        await startLinearRun(deps, p, { repo: run.repo, dedupe: `${sessionId}:${activityId}`, continueFrom: run, prompt: continuationPrompt(run.prompt, text) });
        return;
      }
      // A session we never saw (its `created` was missed during downtime): start as `created` would, with this text.
      if (await joinedRunningIssue(deps, fresh, `${sessionId}:${activityId}`)) return;
      await startLinearRun(deps, fresh, { repo: decision.kind === "start" ? decision.repo : null, dedupe: `${sessionId}:${activityId}` });
      return;
    }
    case "repo_answer": {
      // No run yet: the answer to "which repo?".
      const pending = asked!;
      const allowed = deps.service.repos.names();
      const chosen = repoFromAnswer(text, allowed);
      if (!chosen) {
        await askForRepo(deps, pending, { repo: null, reason: "none", allowed }, `linear:ask:${sessionId}:${activityId}`);
        return;
      }
      await startLinearRun(deps, { ...pending, author: pending.author ?? author }, { repo: chosen, dedupe: `${sessionId}:${activityId}` });
    }
  }
}

/** Answers the run's oldest open question `q` with `text`. */
async function answerAgent(deps: LinearDeps, run: Run, q: PendingQuestion, text: string, author: string | null, say: (body: string) => Promise<void>): Promise<void> {
  try {
    const done = await answerQuestion(deps.service.store, run.id, q.id, { answer: text }, { author, source: "linear" });
    runLog(deps.log, run.id).info({ questionId: q.id, kind: q.kind }, "question answered from Linear");
    await say(q.kind === "permission" ? `${done.summary}; passing that to the agent.` : "Got your answer; passing it to the agent.");
  } catch (e) {
    if (!(e instanceof RunInputError)) throw e;
    // The message may name the agent's options: its words, made inert (as in a classic thread).
    await say(`That didn't answer the agent's question: ${neutralizeAgentMarkdown(e.message)}.`);
  }
}
