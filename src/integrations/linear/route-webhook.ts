/**
 * Which Linear webhooks we act on, the keys that make a redelivery a duplicate, and the work to do in the
 * background. Anything else is acknowledged and ignored.
 */
import { refuseDelivery } from "./allowlist.ts";
import type { LinearDeps } from "./deps.ts";
import { assignedToBot, onIssueAssigned } from "./on-issue-assigned.ts";
import { classifyComment, onCommentCreated } from "./on-comment-created.ts";
import { onSessionCreated } from "./on-session-created.ts";
import { onSessionPrompted } from "./on-session-prompted.ts";
import { isAppRevoked, onAppRevoked } from "./on-app-revoked.ts";

export interface Routed {
  /** What the delivery is about (the `linear-delivery` id is added by the caller). */
  keys: string[];
  what: string;
  work: () => Promise<void>;
}

export async function routeWebhook(deps: LinearDeps, payload: any): Promise<Routed | null> {
  // Uninstalled: dropped tokens and stopped runs, whatever the allowlist says.
  if (isAppRevoked(payload, deps.config.LINEAR_CLIENT_ID)) {
    return { keys: [`linear:revoked:${payload.organizationId}:${payload.webhookTimestamp ?? ""}`], what: "app uninstalled", work: () => onAppRevoked(deps, payload) };
  }
  // Which workspaces may drive runs (allowlist.ts): a refused one gets one answer, nothing else.
  const refused = refuseDelivery(deps, payload);
  if (refused) return refused === "ignore" ? null : refused;
  const hook = String(payload?.webhookId ?? "");
  if (payload?.type === "AgentSessionEvent") {
    const sessionId = payload.agentSession?.id;
    if (!sessionId) return null;
    if (payload.action === "created")
      return { keys: [`linear:session:${hook}:${sessionId}:created`], what: "session created", work: () => onSessionCreated(deps, payload) };
    if (payload.action === "prompted") {
      // Without an activity id only the `linear-delivery` id tells a redelivery: an empty id would make every such prompt one.
      const activityId = payload.agentActivity?.id;
      const keys = typeof activityId === "string" && activityId ? [`linear:session:${hook}:${sessionId}:prompted:${activityId}`] : [];
      return { keys, what: "session prompted", work: () => onSessionPrompted(deps, payload) };
    }
    return null;
  }
  if (payload?.type === "Issue") {
    // Only the configured classic bot user: delegating to the agent app already opens an agent session.
    if (!deps.config.LINEAR_BOT_USER_ID || !assignedToBot(payload, [deps.config.LINEAR_BOT_USER_ID])) return null;
    const d = payload.data;
    return { keys: [`linear:assigned:${hook}:${d.id}:${d.updatedAt ?? payload.webhookTimestamp}`], what: "issue assigned", work: () => onIssueAssigned(deps, payload) };
  }
  if (payload?.type === "Comment") {
    const target = await classifyComment(deps, payload);
    if (!target) return null;
    return { keys: [`linear:comment:${hook}:${payload.data.id}`], what: "comment", work: () => onCommentCreated(deps, payload, target) };
  }
  return null;
}
