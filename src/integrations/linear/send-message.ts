/** The Linear notifier's I/O: one outbox payload → one Linear write. Errors come back as RetryLater where a retry helps. */
import { AgentActivitySignal, InvalidInputLinearError } from "@linear/sdk";
import type { LinearClients } from "./linear-clients.ts";
import type { LinearPayload } from "./messages.ts";
import { moveIssueToStarted } from "./move-issue-to-started.ts";
import { toRetry } from "./to-retry.ts";

export async function sendLinearMessage(clients: LinearClients, p: LinearPayload): Promise<Record<string, unknown>> {
  try {
    const client = await clients.forWorkspace(p.workspaceId);
    switch (p.op) {
      case "activity": {
        // Our own id: a resend after a timeout is the same activity, not a second one.
        const r = await client.createAgentActivity({
          id: p.id,
          agentSessionId: p.sessionId,
          content: p.content as never,
          ...(p.ephemeral ? { ephemeral: true } : {}),
          ...(p.signal ? { signal: AgentActivitySignal.Select, signalMetadata: p.signalMetadata } : {}),
        });
        return { activityId: r.agentActivityId ?? p.id };
      }
      case "session": {
        const r = await client.updateAgentSession(p.sessionId, p.input as never);
        return { ok: r.success };
      }
      case "start-issue":
        return await moveIssueToStarted(client, p.issueId);
      case "attach": {
        // The same url on the same issue is an upsert.
        const r = await client.createAttachment({ issueId: p.issueId, title: p.title, url: p.url, ...(p.subtitle ? { subtitle: p.subtitle } : {}) });
        return { attachmentId: r.attachmentId };
      }
      case "comment": {
        try {
          const r = await client.createComment({ id: p.id, issueId: p.issueId, body: p.body, ...(p.parentId ? { parentId: p.parentId } : {}) });
          return { commentId: r.commentId ?? p.id };
        } catch (e) {
          // A resend after a lost answer: the comment with our id is already there.
          if (e instanceof InvalidInputLinearError && (await client.comment({ id: p.id }).catch(() => null))) return { commentId: p.id, existed: true };
          throw e;
        }
      }
      default:
        throw new Error(`unknown Linear message ${(p as { op?: string }).op}`);
    }
  } catch (e) {
    throw toRetry(e);
  }
}
