/**
 * Linear runs by the conversation they answer to (the conversations table, src/intake/conversations.ts): an agent
 * session, an issue, or a classic run's comment thread; and the "which repo?" asked in one of them.
 */
import type { Run } from "../../db/schema.ts";
import { conversationKey } from "../../intake/conversations.ts";
import { isTerminal } from "../../runs/model.ts";
import type { LinearDeps } from "./deps.ts";
import type { PendingStart } from "./messages.ts";
import { threadCommentId } from "./plan-messages.ts";

type Lookup = Pick<LinearDeps, "conversations" | "service">;

/** Where a "which repo?" for this start is kept: the agent session, or the issue's classic comments. */
export function askedIn(p: Pick<PendingStart, "mode" | "sessionId" | "issueId">): string {
  return p.mode === "agent" ? conversationKey.linearSession(p.sessionId ?? "") : conversationKey.linearIssue(p.issueId);
}

/** The conversations a new Linear run belongs to: its session (agent) or comment thread (classic), and its issue. */
export function conversationsOfRun(p: Pick<PendingStart, "mode" | "sessionId" | "issueId">, runId: string): string[] {
  const keys = [p.mode === "agent" ? conversationKey.linearSession(p.sessionId ?? "") : conversationKey.linearThread(threadCommentId(runId))];
  if (p.issueId) keys.push(conversationKey.linearIssue(p.issueId));
  return keys.filter((k) => !k.endsWith(":")); // a session without an id names no conversation
}

async function runOf(deps: Lookup, key: string): Promise<Run | null> {
  if (key.endsWith(":")) return null;
  const id = await deps.conversations.runOf("linear", key);
  return id ? deps.service.store.get(id) : null;
}

export function latestRunForSession(deps: Lookup, sessionId: string): Promise<Run | null> {
  return runOf(deps, conversationKey.linearSession(sessionId));
}

/** The classic run whose comment thread starts with this comment. */
export function runOfCommentThread(deps: Lookup, parentCommentId: string): Promise<Run | null> {
  return runOf(deps, conversationKey.linearThread(parentCommentId));
}

/** The issue's latest run, of any agent session or the classic thread. */
export function latestRunForIssue(deps: Lookup, issueId: string): Promise<Run | null> {
  return runOf(deps, conversationKey.linearIssue(issueId));
}

/**
 * The run working on an issue right now (any agent session or classic thread), if any: one run per issue at a time
 * (the database refuses a second live one, migration 0005), so only the issue's latest run can be working.
 */
export async function activeRunForIssue(deps: Lookup, issueId: string): Promise<Run | null> {
  if (!issueId) return null;
  const run = await latestRunForIssue(deps, issueId);
  return run && !isTerminal(run.status) ? run : null;
}

/** The "which repo?" asked in a session (agent) or on an issue (classic) and not followed by a run, with what it was for. */
export async function pendingStart(deps: Lookup, by: { sessionId: string } | { issueId: string }): Promise<PendingStart | null> {
  const key = "sessionId" in by ? conversationKey.linearSession(by.sessionId) : conversationKey.linearIssue(by.issueId);
  if (key.endsWith(":")) return null;
  const asked = await deps.conversations.pendingOf("linear", key);
  const start = asked?.start as Partial<PendingStart> | undefined;
  // Written by askForRepo; checked anyway, as everything read back from storage that came from a webhook.
  if (!start || typeof start.workspaceId !== "string" || (start.mode !== "agent" && start.mode !== "classic") || typeof start.issueId !== "string") return null;
  return start as PendingStart;
}
