/**
 * The app was uninstalled from a Linear workspace (webhook `OAuthApp` / `revoked`): its stored tokens are dropped
 * at once, and every run of that workspace still going is stopped with the reason, which the dashboard, the API
 * and the CLI show (Linear itself can no longer be written to with the revoked token).
 */
import { and, eq, notInArray, sql } from "drizzle-orm";
import { installations, runs } from "../../db/schema.ts";
import { runLog } from "../../log/logger.ts";
import { TERMINAL_STATUSES } from "../../runs/state-machine.ts";
import type { LinearDeps } from "./deps.ts";
import { LINEAR_SURFACE } from "./linear-clients.ts";

export const UNINSTALLED_BY = "Linear (the app was uninstalled from the workspace)";

export function isAppRevoked(payload: unknown, ourClientId: string | undefined): boolean {
  const p = payload as { type?: unknown; action?: unknown; oauthClientId?: unknown; organizationId?: unknown } | null;
  if (p?.type !== "OAuthApp" || p.action !== "revoked" || typeof p.organizationId !== "string" || !p.organizationId) return false;
  // Another app's revocation is none of our business (only ours should reach this webhook anyway).
  return !ourClientId || p.oauthClientId === ourClientId;
}

export async function onAppRevoked(deps: LinearDeps, payload: { organizationId: string }): Promise<void> {
  const org = payload.organizationId;
  const dropped = await deps.db
    .delete(installations)
    .where(and(eq(installations.surface, LINEAR_SURFACE), eq(installations.workspaceId, org)))
    .returning({ w: installations.workspaceId });
  const live = await deps.db
    .select({ id: runs.id })
    .from(runs)
    .where(and(eq(runs.source, "linear"), sql`${runs.sourceRef}->>'workspaceId' = ${org}`, notInArray(runs.status, [...TERMINAL_STATUSES])))
    .limit(1000);
  for (const r of live) {
    await deps.service.stop(r.id, { author: UNINSTALLED_BY, source: "linear" });
    runLog(deps.log, r.id).info({ organizationId: org }, "run stopped: the Linear app was uninstalled");
  }
  deps.log.warn({ organizationId: org, tokensDropped: dropped.length, runsStopped: live.length }, "Linear app uninstalled from a workspace: its tokens are dropped");
}
