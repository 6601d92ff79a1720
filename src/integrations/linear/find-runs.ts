/** Linear runs by what they answer to: an agent session, or an issue's classic comment thread. */
import { and, desc, eq, notInArray, sql } from "drizzle-orm";
import type { Db } from "../../db/database.ts";
import { notifications, type Run, runs } from "../../db/schema.ts";
import { TERMINAL_STATUSES } from "../../runs/model.ts";
import type { PendingStart } from "./messages.ts";

export async function latestRunForSession(db: Db, sessionId: string): Promise<Run | null> {
  const [r] = await db
    .select()
    .from(runs)
    .where(and(eq(runs.source, "linear"), sql`${runs.sourceRef}->>'agentSessionId' = ${sessionId}`))
    .orderBy(desc(runs.createdAt))
    .limit(1);
  return r ?? null;
}

export async function classicRunsForIssue(db: Db, issueId: string): Promise<Run[]> {
  return db
    .select()
    .from(runs)
    .where(and(eq(runs.source, "linear"), sql`${runs.sourceRef}->>'mode' = 'classic'`, sql`${runs.sourceRef}->>'issueId' = ${issueId}`))
    .orderBy(desc(runs.createdAt))
    .limit(20);
}

/** The last "which repo?" question asked in a session (agent) or on an issue (classic), with what it was for. */
export async function pendingStart(db: Db, by: { sessionId: string } | { issueId: string }): Promise<{ pending: PendingStart; askedId: string } | null> {
  const cond =
    "sessionId" in by
      ? and(eq(notifications.kind, "activity.elicitation"), sql`${notifications.payload}->>'sessionId' = ${by.sessionId}`)
      : and(eq(notifications.kind, "comment.ask"), sql`${notifications.payload}->>'issueId' = ${by.issueId}`);
  const [row] = await db
    .select()
    .from(notifications)
    .where(and(eq(notifications.surface, "linear"), cond))
    .orderBy(desc(notifications.id))
    .limit(1);
  const p = row?.payload as { pending?: PendingStart; id?: string } | undefined;
  return p?.pending ? { pending: p.pending, askedId: String(p.id ?? "") } : null;
}

/** The run working on an issue right now (any agent session or classic thread), if any: one run per issue at a time. */
export async function activeRunForIssue(db: Db, issueId: string): Promise<Run | null> {
  if (!issueId) return null;
  const [r] = await db
    .select()
    .from(runs)
    .where(and(eq(runs.source, "linear"), sql`${runs.sourceRef}->>'issueId' = ${issueId}`, notInArray(runs.status, [...TERMINAL_STATUSES])))
    .orderBy(desc(runs.createdAt))
    .limit(1);
  return r ?? null;
}
