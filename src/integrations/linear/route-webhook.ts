/**
 * Which Linear webhooks we act on, the keys that make a redelivery a duplicate, and the work to do in the
 * background. Anything else is acknowledged and ignored.
 */
import type { LinearDeps } from "./deps.ts";
import { assignedToBot, onIssueAssigned } from "./on-issue-assigned.ts";
import { classifyComment, onCommentCreated } from "./on-comment-created.ts";
import { onSessionCreated } from "./on-session-created.ts";
import { onSessionPrompted } from "./on-session-prompted.ts";

export interface Routed {
  /** What the delivery is about (the `linear-delivery` id is added by the caller). */
  keys: string[];
  what: string;
  work: () => Promise<void>;
}

export async function routeWebhook(deps: LinearDeps, payload: any): Promise<Routed | null> {
  const hook = String(payload?.webhookId ?? "");
  if (payload?.type === "AgentSessionEvent") {
    const sessionId = payload.agentSession?.id;
    if (!sessionId) return null;
    if (payload.action === "created")
      return { keys: [`linear:session:${hook}:${sessionId}:created`], what: "session created", work: () => onSessionCreated(deps, payload) };
    if (payload.action === "prompted") {
      const activityId = payload.agentActivity?.id ?? "";
      return { keys: [`linear:session:${hook}:${sessionId}:prompted:${activityId}`], what: "session prompted", work: () => onSessionPrompted(deps, payload) };
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
