/**
 * Which Linear workspaces may drive runs: LINEAR_ALLOWED_ORGANIZATIONS (organization ids or url keys; empty = any
 * workspace whose webhook reaches us with a valid signature). Refused deliveries get one short answer in the
 * agent session (or on the issue) and nothing else. The decision is pure; `refuseDelivery` wires it up.
 */
import type { LinearDeps } from "./deps.ts";
import { pendingFromSession } from "./on-session-created.ts";
import type { Routed } from "./route-webhook.ts";
import { sayWithoutRun } from "./say-without-run.ts";

/** Null when the organization may drive runs; otherwise the short reply that says why and whom to ask. Pure. */
export function linearRefusal(org: { id?: string | null; urlKey?: string | null }, allowed: readonly string[]): string | null {
  if (!allowed.length) return null;
  if ((org.id && allowed.includes(org.id)) || (org.urlKey && allowed.includes(org.urlKey))) return null;
  return "Sorry, this Deckhand does not take work from this Linear workspace. Ask whoever runs Deckhand to add it (LINEAR_ALLOWED_ORGANIZATIONS).";
}

/** A delivery from a refused workspace: the one answer to give (agent sessions), or null to let it through. */
export function refuseDelivery(deps: LinearDeps, payload: any): Routed | "ignore" | null {
  const orgId = String(payload?.organizationId ?? payload?.agentSession?.organizationId ?? "");
  const refusal = linearRefusal({ id: orgId, urlKey: payload?.organization?.urlKey ?? null }, deps.config.LINEAR_ALLOWED_ORGANIZATIONS);
  if (!refusal) return null;
  const sessionId = payload?.agentSession?.id;
  if (payload?.type !== "AgentSessionEvent" || !sessionId || !["created", "prompted"].includes(payload.action)) return "ignore";
  const key = `linear:refused:${payload.webhookId ?? ""}:${sessionId}:${payload.action}:${payload.agentActivity?.id ?? ""}`;
  return {
    keys: [key],
    what: "refused workspace",
    work: async () => {
      deps.log.info({ organizationId: orgId, sessionId }, "Linear request refused by LINEAR_ALLOWED_ORGANIZATIONS");
      const p = pendingFromSession(payload);
      await sayWithoutRun(deps, p, key, { type: "error", body: refusal });
    },
  };
}
