/**
 * Leases on runs: the lease SQL in one place. A process acts on a run (provisions it, delivers its result, ...)
 * only while it holds the run's lease; every write it makes meanwhile is conditioned on still holding it
 * (`lease_owner = $me and lease_expires_at > now()`, as Graphile Worker's `locked_by = $me`): zero rows means the
 * lease was lost and the work stops. The time of a retry is its own column (`retry_at`), never the lease.
 */
import { and, asc, eq, inArray, isNull, lt, or, type SQL, sql } from "drizzle-orm";
import type { Db } from "../db/database.ts";
import { type Run, runs } from "../db/schema.ts";
import type { Logger } from "../log/logger.ts";
import { WORKING_STATUSES } from "./model.ts";
import { transition } from "./state-machine.ts";

/** Writes made under a lease land only while the writer still holds it. Absent owner: an unconditioned write. */
export interface UnderLease {
  leaseOwner?: string;
}

/** A lease held by the work in progress: its owner for conditioned writes, and a signal that aborts when it is lost. */
export interface HeldLease {
  leaseOwner: string;
  signal: AbortSignal;
}

/** The lease on a run was lost (taken by another process after it expired): the work in progress stops. */
export class LeaseLost extends Error {
  constructor(runId: string) {
    super(`lost the lease on run ${runId}`);
    this.name = "LeaseLost";
  }
}

/** The SQL condition "the writer still holds the lease" (undefined: no condition). */
export const leaseHeld = (o: UnderLease): SQL | undefined =>
  o.leaseOwner ? and(eq(runs.leaseOwner, o.leaseOwner), sql`${runs.leaseExpiresAt} > now()`) : undefined;

/** Throw LeaseLost when a conditioned write found no row, or the lease's signal has aborted. */
export function mustHold(runId: string, wrote: boolean, lease?: Pick<HeldLease, "signal">): void {
  if (lease?.signal.aborted) throw lease.signal.reason ?? new LeaseLost(runId);
  if (!wrote) throw new LeaseLost(runId);
}

/** Serialises claims across processes (a transaction-scoped advisory lock). */
const CLAIM_LOCK = 7_406_222;

export class RunLeases {
  constructor(private readonly db: Db) {}

  /** Take a free (or expired, or already own) lease. */
  async take(runId: string, owner: string, ms: number): Promise<boolean> {
    const now = new Date();
    const rows = await this.db
      .update(runs)
      .set({ leaseOwner: owner, leaseExpiresAt: new Date(now.getTime() + ms) })
      .where(and(eq(runs.id, runId), or(isNull(runs.leaseExpiresAt), lt(runs.leaseExpiresAt, now), eq(runs.leaseOwner, owner))))
      .returning({ id: runs.id });
    return rows.length > 0;
  }

  /** Extend a lease `owner` holds; false when it is no longer theirs (expired and taken, or released). */
  async renew(runId: string, owner: string, ms: number): Promise<boolean> {
    const rows = await this.db
      .update(runs)
      .set({ leaseExpiresAt: new Date(Date.now() + ms) })
      .where(and(eq(runs.id, runId), leaseHeld({ leaseOwner: owner })))
      .returning({ id: runs.id });
    return rows.length > 0;
  }

  async release(runId: string, owner: string): Promise<void> {
    await this.db
      .update(runs)
      .set({ leaseOwner: null, leaseExpiresAt: null })
      .where(and(eq(runs.id, runId), eq(runs.leaseOwner, owner)));
  }

  /**
   * Claim the oldest queued run if there is capacity (in total and for its repo): it becomes `provisioning` with
   * `owner`'s lease. Serialised across processes by an advisory lock.
   */
  async claimQueued(owner: string, o: { ms: number; maxConcurrent: number; repoMax?: number }): Promise<Run | null> {
    return await this.db.transaction(async (tx) => {
      await tx.execute(sql`select pg_advisory_xact_lock(${CLAIM_LOCK})`);
      const working = [...WORKING_STATUSES];
      const [{ n }] = (await tx
        .select({ n: sql<number>`count(*)::int` })
        .from(runs)
        .where(inArray(runs.status, working))) as [{ n: number }];
      if (n >= o.maxConcurrent) return null;
      // The oldest queued run whose repo is under its own limit (REPO_MAX_CONCURRENT_RUNS).
      const repoFull = o.repoMax
        ? sql`${runs.repo} not in (select repo from runs where ${inArray(runs.status, working)} group by repo having count(*) >= ${o.repoMax})`
        : undefined;
      const [next] = await tx.select().from(runs).where(and(eq(runs.status, "queued"), repoFull)).orderBy(asc(runs.createdAt)).limit(1).for("update", { skipLocked: true });
      if (!next) return null;
      const out = transition("queued", { type: "claim" });
      if (!out.ok) return null;
      const now = new Date();
      const [row] = await tx
        .update(runs)
        .set({
          status: out.to,
          statusReason: null,
          statusChangedAt: now,
          updatedAt: now,
          leaseOwner: owner,
          leaseExpiresAt: new Date(now.getTime() + o.ms),
          phases: sql`${runs.phases} || ${JSON.stringify([{ phase: out.to, at: now.toISOString() }])}::jsonb`,
        })
        .where(and(eq(runs.id, next.id), eq(runs.status, "queued")))
        .returning();
      return row ?? null;
    });
  }
}

/**
 * Do `work` while holding `owner`'s lease on the run: renewed every third of its length; a renewal that finds the
 * lease taken (or cannot renew it before it runs out) aborts the work's signal. The lease is released at the end.
 */
export async function underLease<T>(
  leases: RunLeases,
  runId: string,
  o: { owner: string; ms: number; log: Logger },
  work: (lease: HeldLease) => Promise<T>,
): Promise<T> {
  const ctl = new AbortController();
  let renewedAt = Date.now();
  const renew = setInterval(() => {
    leases
      .renew(runId, o.owner, o.ms)
      .then((ok) => (ok ? (renewedAt = Date.now()) : ctl.abort(new LeaseLost(runId))))
      .catch((e) => {
        o.log.warn({ err: (e as Error).message }, "could not renew the run's lease");
        if (Date.now() - renewedAt >= o.ms) ctl.abort(new LeaseLost(runId));
      });
  }, Math.max(10, o.ms / 3));
  try {
    return await work({ leaseOwner: o.owner, signal: ctl.signal });
  } finally {
    clearInterval(renew);
    await leases.release(runId, o.owner).catch(() => {});
  }
}
