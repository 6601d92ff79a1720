/**
 * Things said in Linear before a run exists (which repo?, a refusal): queued in the outbox with no run, so they
 * are retried and ordered like everything else said in the session or on the issue. What a "which repo?" was
 * for is kept in the conversations table (askForRepo), not in the message.
 */
import type { OutboxMessage } from "../../notify/notifier.ts";
import type { LinearDeps } from "./deps.ts";
import type { ActivityContent, LinearPayload, PendingStart } from "./messages.ts";
import { selectSignal } from "./questions.ts";
import { stableUuid } from "./stable-uuid.ts";

export async function sayWithoutRun(
  deps: Pick<LinearDeps, "outbox">,
  to: Pick<PendingStart, "workspaceId" | "mode" | "sessionId" | "issueId">,
  dedupeKey: string,
  content: ActivityContent & { type: "elicitation" | "error" | "response" | "thought" },
  /** Options to pick from (an agent session's `select` elicitation); a classic comment lists them in its text. */
  options?: string[],
): Promise<void> {
  const id = stableUuid(dedupeKey);
  let m: OutboxMessage;
  if (to.mode === "agent") {
    const payload: LinearPayload = { op: "activity", workspaceId: to.workspaceId, sessionId: to.sessionId!, id, content, ...(options?.length ? selectSignal(options) : {}) };
    m = { dedupeKey, orderingKey: `linear:session:${to.sessionId}`, kind: `activity.${content.type}`, payload };
  } else {
    const payload: LinearPayload = { op: "comment", workspaceId: to.workspaceId, issueId: to.issueId, id, body: content.body };
    m = { dedupeKey, orderingKey: `linear:issue:${to.issueId}`, kind: content.type === "elicitation" ? "comment.ask" : "comment", payload };
  }
  await deps.outbox.enqueue(null, "linear", [m]);
  deps.outbox.kick();
}
