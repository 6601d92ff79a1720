/** `AgentSessionEvent` / `created`: a delegation or a mention opened an agent session → start a run (or ask which repo). */
import type { LinearDeps } from "./deps.ts";
import type { PendingStart } from "./messages.ts";
import { startLinearRun } from "./start-linear-run.ts";

export function pendingFromSession(payload: any): PendingStart {
  const s = payload.agentSession ?? {};
  const issue = s.issue ?? {};
  return {
    workspaceId: String(payload.organizationId ?? s.organizationId ?? ""),
    mode: "agent",
    sessionId: String(s.id),
    issueId: String(issue.id ?? s.issueId ?? ""),
    identifier: String(issue.identifier ?? "issue"),
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
  const guidance = Array.isArray(payload.guidance) ? payload.guidance.map((g: any) => String(g?.body ?? "")).filter(Boolean) : [];
  await startLinearRun(deps, p, { teamKey: payload.agentSession?.issue?.team?.key ?? null, dedupe: `${p.sessionId}:created`, guidance });
}
