/**
 * `AgentSessionEvent` / `created`: a delegation or a mention opened an agent session → start a run (or ask which
 * repo). One run per issue at a time: a second session on an issue whose run is still working joins that run (its
 * request becomes a follow-up) and is told where the work happens.
 */
import type { LinearDeps } from "./deps.ts";
import { activeRunForIssue } from "./find-runs.ts";
import type { PendingStart } from "./messages.ts";
import { sayWithoutRun } from "./say-without-run.ts";
import { startLinearRun } from "./start-linear-run.ts";

export function pendingFromSession(payload: any): PendingStart {
  const s = payload.agentSession ?? {};
  const issue = s.issue ?? {};
  const issueId = String(issue.id ?? s.issueId ?? "");
  return {
    workspaceId: String(payload.organizationId ?? s.organizationId ?? ""),
    mode: "agent",
    sessionId: String(s.id),
    issueId,
    identifier: String(issue.identifier ?? (issueId ? "issue" : "Linear session")),
    title: String(issue.title ?? ""),
    description: issue.description ?? null,
    url: issue.url ?? null,
    teamId: issue.teamId ?? issue.team?.id ?? null,
    promptContext: typeof payload.promptContext === "string" ? payload.promptContext : null,
    request: s.comment?.body ?? null,
    author: s.creator?.name ?? s.creatorId ?? null,
  };
}

export async function onSessionCreated(deps: LinearDeps, payload: any): Promise<void> {
  const p = pendingFromSession(payload);
  if (await joinedRunningIssue(deps, p, `${p.sessionId}:created`)) return;
  const guidance = Array.isArray(payload.guidance) ? payload.guidance.map((g: any) => String(g?.body ?? "")).filter(Boolean) : [];
  await startLinearRun(deps, p, { teamKey: payload.agentSession?.issue?.team?.key ?? null, dedupe: `${p.sessionId}:created`, guidance });
}

/** Another session's run is working on this issue: pass the request to it and say so here. */
export async function joinedRunningIssue(deps: LinearDeps, p: PendingStart, dedupe: string): Promise<boolean> {
  const run = await activeRunForIssue(deps, p.issueId);
  if (!run || (run.sourceRef as { agentSessionId?: string }).agentSessionId === p.sessionId) return false;
  const request = p.request?.trim();
  if (request) await deps.service.followUp(run.id, { text: request, author: p.author ?? null, source: "linear" });
  const url = deps.service.runPageUrl(run);
  const body = `Deckhand is already working on ${p.identifier} (another session): ${url}.${request ? " I passed your request to that run." : ""}`;
  deps.log.info({ runId: run.id, sessionId: p.sessionId, issueId: p.issueId }, "a second Linear session joined the issue's running run");
  await sayWithoutRun(deps, p, `linear:joined:${dedupe}`, { type: "response", body });
  return true;
}
