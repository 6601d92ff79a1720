/**
 * `AgentSessionEvent` / `prompted`: the user wrote in the session. It steers a working run, continues an idle
 * one (or a finished one, on the same branch), answers a "which repo?" question, or — with the `stop`
 * signal — stops the run (the notifier then posts the final activity).
 */
import { isTerminal } from "../../runs/state-machine.ts";
import { continuationPrompt } from "./build-prompt.ts";
import { repoFromAnswer } from "./choose-repo.ts";
import type { LinearDeps } from "./deps.ts";
import { latestRunForSession, pendingStart } from "./find-runs.ts";
import type { PendingStart } from "./messages.ts";
import { linearRef } from "./source-ref.ts";
import { sayWithoutRun } from "./say-without-run.ts";
import { stableUuid } from "./stable-uuid.ts";
import { askForRepo, startLinearRun } from "./start-linear-run.ts";
import { pendingFromSession } from "./on-session-created.ts";

export async function onSessionPrompted(deps: LinearDeps, payload: any): Promise<void> {
  const sessionId = String(payload.agentSession?.id ?? "");
  const activity = payload.agentActivity ?? {};
  const activityId = String(activity.id ?? "");
  const text = String(activity.content?.body ?? activity.body ?? "").trim();
  const author = activity.user?.name ?? activity.userId ?? null;
  const stop = activity.signal === "stop";
  const run = await latestRunForSession(deps.db, sessionId);
  const to = { workspaceId: String(payload.organizationId ?? ""), mode: "agent" as const, sessionId, issueId: String(payload.agentSession?.issueId ?? "") };

  if (stop) {
    if (run && !isTerminal(run.status)) {
      await deps.service.stop(run.id, { author, source: "linear" });
      return;
    }
    await sayWithoutRun(deps, to, `linear:stop:${sessionId}:${activityId}`, { type: "response", body: "Stopped. Nothing was running." });
    return;
  }
  if (!text) return;

  if (run && !isTerminal(run.status)) {
    const wasIdle = run.status === "idle";
    await deps.service.followUp(run.id, { text, author, source: "linear" });
    const ref = linearRef(run)!;
    const key = `linear:${run.id}:ack:${activityId}`;
    await deps.outbox.enqueue(run.id, "linear", [
      {
        dedupeKey: key,
        orderingKey: `linear:session:${sessionId}`,
        kind: "activity.thought",
        payload: {
          op: "activity",
          workspaceId: ref.workspaceId,
          sessionId,
          id: stableUuid(key),
          content: { type: "thought", body: wasIdle ? `Continuing on branch ${run.branch}…` : "Got it; passing that to the agent." },
          ephemeral: true,
        },
      },
    ]);
    deps.outbox.kick();
    return;
  }

  if (run) {
    // Finished (closed, failed, cancelled): a new run continues on the same branch.
    const ref = linearRef(run)!;
    const p: PendingStart = { workspaceId: ref.workspaceId, mode: "agent", sessionId, issueId: ref.issueId, identifier: ref.identifier, title: run.title.replace(/^[^:]+:\s*/, ""), url: ref.issueUrl, teamId: ref.teamId, author };
    await startLinearRun(deps, p, { repo: run.repo, dedupe: `${sessionId}:${activityId}`, continueFrom: run, prompt: continuationPrompt(run.prompt, text) });
    return;
  }

  // No run yet: the answer to "which repo?".
  const asked = await pendingStart(deps.db, { sessionId });
  const pending: PendingStart = asked?.pending ?? { ...pendingFromSession(payload), request: text, promptContext: null };
  const allowed = deps.service.repos.names();
  const repo = repoFromAnswer(text, allowed);
  if (!repo) {
    await askForRepo(deps, pending, { repo: null, reason: "none", allowed }, `linear:ask:${sessionId}:${activityId}`);
    return;
  }
  await startLinearRun(deps, { ...pending, author: pending.author ?? author }, { repo, dedupe: `${sessionId}:${activityId}` });
}
