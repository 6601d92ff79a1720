/** Classic path (no agent app): an `Issue` update that assigns (or delegates to) the bot user starts a run. */
import type { LinearDeps } from "./deps.ts";
import { activeRunForIssue } from "./find-runs.ts";
import type { PendingStart } from "./messages.ts";
import { linearRef } from "./source-ref.ts";
import { startLinearRun } from "./start-linear-run.ts";

/** Is this update the moment the issue became the bot's? Pure. */
export function assignedToBot(payload: any, botUserIds: string[]): boolean {
  if (payload?.type !== "Issue" || payload.action !== "update" || !payload.data || !payload.updatedFrom) return false;
  for (const field of ["assigneeId", "delegateId"]) {
    const now = payload.data[field];
    if (now && botUserIds.includes(now) && field in payload.updatedFrom && payload.updatedFrom[field] !== now) return true;
  }
  return false;
}

export function pendingFromIssue(payload: any): PendingStart {
  const d = payload.data ?? {};
  return {
    workspaceId: String(payload.organizationId ?? ""),
    mode: "classic",
    issueId: String(d.id),
    identifier: String(d.identifier ?? "issue"),
    title: String(d.title ?? ""),
    description: d.description ?? null,
    url: d.url ?? payload.url ?? null,
    teamId: d.teamId ?? d.team?.id ?? null,
    author: payload.actor?.name ?? null,
  };
}

export async function onIssueAssigned(deps: LinearDeps, payload: any): Promise<void> {
  const p = pendingFromIssue(payload);
  const active = await activeRunForIssue(deps, p.issueId);
  if (active && linearRef(active)?.mode === "classic") return; // Re-assigned while a run is going: nothing new to do.
  await startLinearRun(deps, p, { teamKey: payload.data?.team?.key ?? null, dedupe: `${p.issueId}:assigned:${payload.data?.updatedAt ?? payload.webhookTimestamp}` });
}
