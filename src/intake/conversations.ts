/**
 * The one owner of the `conversations` table: which run a conversation on a surface belongs to (its latest), and
 * the question asked there before a run could start ("which repo?"). Every surface looks its threads, sessions and
 * issues up here; no other module writes the table.
 */
import { and, eq, sql } from "drizzle-orm";
import type { Db } from "../db/database.ts";
import { conversations } from "../db/schema.ts";

export type Surface = "slack" | "linear";

/** The conversation keys of each surface (the table's `key` column). */
export const conversationKey = {
  /** A Slack thread: its channel and root message ts. */
  slackThread: (channel: string, threadTs: string) => `${channel}:${threadTs}`,
  /** A Linear agent session. */
  linearSession: (sessionId: string) => `session:${sessionId}`,
  /** A Linear issue (its latest run, of any session or the classic thread; the classic "which repo?"). */
  linearIssue: (issueId: string) => `issue:${issueId}`,
  /** A classic run's comment thread on a Linear issue (the id of the thread's first comment). */
  linearThread: (commentId: string) => `thread:${commentId}`,
};

/**
 * A question asked in a conversation that has no run yet: "which repo?". `task` and `askedBy` are what the run
 * would need (Slack); `start` is the surface's own record of the run to start (Linear's PendingStart).
 */
export interface AskedQuestion {
  kind: "repo";
  task?: string | null;
  askedBy?: string | null;
  start?: Record<string, unknown>;
}

export interface Conversation {
  runId: string | null;
  pending: AskedQuestion | null;
}

/** Keys and the stored question are bounded: a hostile payload cannot make a huge row. */
const MAX_KEY = 500;
const MAX_PENDING_JSON = 512 * 1024;

function checkKey(key: string): void {
  if (!key || key.length > MAX_KEY) throw new Error(`conversation key must be 1-${MAX_KEY} characters`);
}

function asPending(v: unknown): AskedQuestion | null {
  return v && typeof v === "object" && (v as { kind?: unknown }).kind === "repo" ? (v as AskedQuestion) : null;
}

/** The conversations a new run belongs to: linked in the transaction that creates the run (RunStore.create). */
export interface ConversationLink {
  surface: Surface;
  /** The keys, or how to name them from the new run's id (e.g. a thread named after the run). */
  keys: string[] | ((runId: string) => string[]);
}

/** Link a run to its conversations (upsert; the question asked there is settled). `db` may be a transaction. */
export async function linkConversations(db: Db, link: ConversationLink, runId: string): Promise<void> {
  for (const key of new Set(typeof link.keys === "function" ? link.keys(runId) : link.keys)) {
    checkKey(key);
    await db
      .insert(conversations)
      .values({ surface: link.surface, key, runId, pending: null })
      .onConflictDoUpdate({ target: [conversations.surface, conversations.key], set: { runId, pending: null, updatedAt: sql`now()` } });
  }
}

export class ConversationStore {
  constructor(private readonly db: Db) {}

  async get(surface: Surface, key: string): Promise<Conversation | null> {
    if (!key || key.length > MAX_KEY) return null;
    const [row] = await this.db
      .select({ runId: conversations.runId, pending: conversations.pending })
      .from(conversations)
      .where(and(eq(conversations.surface, surface), eq(conversations.key, key)));
    return row ? { runId: row.runId, pending: asPending(row.pending) } : null;
  }

  /** The conversation's latest run, if any. */
  async runOf(surface: Surface, key: string): Promise<string | null> {
    return (await this.get(surface, key))?.runId ?? null;
  }

  /** The question asked here and not yet followed by a run. */
  async pendingOf(surface: Surface, key: string): Promise<AskedQuestion | null> {
    return (await this.get(surface, key))?.pending ?? null;
  }

  /** We asked a question here (a run cannot start before the answer); the run, if any, stays. */
  async ask(surface: Surface, key: string, pending: AskedQuestion): Promise<void> {
    checkKey(key);
    if (JSON.stringify(pending).length > MAX_PENDING_JSON) throw new Error("the pending question is too large to keep");
    await this.db
      .insert(conversations)
      .values({ surface, key, pending: pending as unknown as Record<string, unknown> })
      .onConflictDoUpdate({ target: [conversations.surface, conversations.key], set: { pending: pending as unknown as Record<string, unknown>, updatedAt: sql`now()` } });
  }
}
