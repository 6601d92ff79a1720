/**
 * The stored digest of each run (table run_digests): the receiver folds new contiguous events into it once per
 * batch; everyone else reads it. A run without a row (or behind its contiguous seq, e.g. after an upgrade) is
 * caught up on read, in pages, so a reader never folds more than the events it is missing.
 */
import { and, asc, eq, gt, lte, sql } from "drizzle-orm";
import type { Db } from "../db/database.ts";
import { runDigests, runEvents, runs } from "../db/schema.ts";
import { digestOf, emptyFold, type FoldState, fold, loadFold } from "./fold.ts";
import type { RunDigest, StoredEvent } from "./vocabulary.ts";

const PAGE = 2000;
/**
 * Fold states recently read or written by this process, by run: a reader then fetches only `last_seq` (and the
 * state itself only when another process moved it). States are never mutated (fold returns a copy).
 */
const CACHE_MAX = 200;
const cache = new Map<string, FoldState>();
function remember(runId: string, state: FoldState): FoldState {
  cache.delete(runId);
  cache.set(runId, state);
  if (cache.size > CACHE_MAX) cache.delete(cache.keys().next().value!);
  return state;
}

async function readState(db: Db, runId: string): Promise<{ lastSeq: number; state: FoldState } | null> {
  const [head] = await db.select({ lastSeq: runDigests.lastSeq }).from(runDigests).where(eq(runDigests.runId, runId));
  if (!head) return null;
  const hit = cache.get(runId);
  if (hit && hit.lastSeq === head.lastSeq) return { lastSeq: head.lastSeq, state: hit };
  const [row] = await db.select({ lastSeq: runDigests.lastSeq, digest: runDigests.digest }).from(runDigests).where(eq(runDigests.runId, runId));
  if (!row) return null;
  const state = loadFold(row.digest);
  // A row made by countEvents before any fold holds `{}`: its state is empty at seq 0.
  return { lastSeq: row.lastSeq, state: state.lastSeq === row.lastSeq ? remember(runId, state) : emptyFold() };
}

/** The fold state of a run, brought up to `upTo` (its contiguous last seq; read from the run when omitted). */
export async function advanceDigest(db: Db, runId: string, upTo?: number, fresh: readonly StoredEvent[] = []): Promise<FoldState> {
  let target = upTo;
  if (target === undefined) {
    const [r] = await db.select({ last: runs.lastEventSeq }).from(runs).where(eq(runs.id, runId));
    target = r?.last ?? 0;
  }
  for (let attempt = 0; attempt < 5; attempt++) {
    const row = await readState(db, runId);
    let state = row?.state ?? emptyFold();
    const from = row?.lastSeq ?? 0;
    if (from >= target) return state;
    // Fold page by page (each page is bounded); the last seq folded is the contiguous target.
    // The events just stored by the caller, when they are exactly the next ones: no need to read them back.
    const next = fresh.filter((e) => e.seq > state.lastSeq && e.seq <= target).sort((a, b) => a.seq - b.seq);
    if (next.length && next[0]!.seq === state.lastSeq + 1 && next.every((e, i) => e.seq === next[0]!.seq + i) && next.at(-1)!.seq === target) state = fold(state, next);
    while (state.lastSeq < target) {
      const page = await db
        .select()
        .from(runEvents)
        .where(and(eq(runEvents.runId, runId), gt(runEvents.seq, state.lastSeq), lte(runEvents.seq, target)))
        .orderBy(asc(runEvents.seq))
        .limit(PAGE);
      if (!page.length) break;
      state = fold(state, page);
    }
    const json = state as unknown as Record<string, unknown>;
    if (!row) {
      const ins = await db.insert(runDigests).values({ runId, lastSeq: state.lastSeq, digest: json }).onConflictDoNothing().returning({ runId: runDigests.runId });
      if (ins.length) return remember(runId, state);
    } else {
      const upd = await db
        .update(runDigests)
        .set({ lastSeq: state.lastSeq, digest: json, updatedAt: new Date() })
        .where(and(eq(runDigests.runId, runId), eq(runDigests.lastSeq, from)))
        .returning({ runId: runDigests.runId });
      if (upd.length) return remember(runId, state);
    }
    // Another writer moved it first: read again.
  }
  const [row] = await db.select({ digest: runDigests.digest }).from(runDigests).where(eq(runDigests.runId, runId));
  return loadFold(row?.digest);
}

/** What people see of a run, from its stored digest. */
export async function readDigest(db: Db, runId: string): Promise<RunDigest> {
  return digestOf(await advanceDigest(db, runId));
}

/** Count newly stored events against the run's totals; returns the totals after. */
export async function countEvents(db: Db, runId: string, count: number, bytes: number): Promise<{ eventCount: number; eventBytes: number }> {
  await db.insert(runDigests).values({ runId }).onConflictDoNothing();
  const [r] = await db
    .update(runDigests)
    .set({ eventCount: sql`${runDigests.eventCount} + ${count}`, eventBytes: sql`${runDigests.eventBytes} + ${bytes}` })
    .where(eq(runDigests.runId, runId))
    .returning({ eventCount: runDigests.eventCount, eventBytes: runDigests.eventBytes });
  return { eventCount: Number(r?.eventCount ?? 0), eventBytes: Number(r?.eventBytes ?? 0) };
}
