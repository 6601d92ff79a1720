/**
 * Where a queued run stands and why it waits: its position (oldest first), the limits that hold it back
 * (MAX_CONCURRENT_RUNS, REPO_MAX_CONCURRENT_RUNS) and the provider circuit breaker. `describeQueue` is pure;
 * `queueStatus` reads the counts.
 */
import { and, eq, inArray, lt, sql } from "drizzle-orm";
import type { Db } from "../db/database.ts";
import { type Run, runs } from "../db/schema.ts";
import { WORKING_STATUSES } from "./model.ts";

export interface QueueFacts {
  /** Queued runs created before this one. */
  ahead: number;
  /** Runs provisioning or running, in all repos and in this run's repo. */
  active: number;
  repoActive: number;
  limit: number;
  repoLimit: number | null;
  repo: string;
  /** The breaker's words when it is open (null: closed). */
  providerNote: string | null;
}

export interface QueueStatus {
  /** 1 = next to start. */
  position: number;
  waitingFor: "capacity" | "repo_capacity" | "provider" | "nothing";
  /** Plain words for the surfaces. */
  note: string;
  active: number;
  limit: number;
  repoActive: number;
  repoLimit: number | null;
}

const runs_ = (n: number) => `${n} run${n === 1 ? "" : "s"}`;

export function describeQueue(f: QueueFacts): QueueStatus {
  const position = f.ahead + 1;
  const behind = f.ahead ? ` ${runs_(f.ahead)} ahead of this one.` : "";
  const base = { position, active: f.active, limit: f.limit, repoActive: f.repoActive, repoLimit: f.repoLimit };
  if (f.providerNote) return { ...base, waitingFor: "provider", note: `Queued (position ${position}). ${f.providerNote}` };
  if (f.active >= f.limit) {
    return { ...base, waitingFor: "capacity", note: `Queued (position ${position}): ${f.active} of ${f.limit} runs are working; this one starts when one finishes.${behind}` };
  }
  if (f.repoLimit !== null && f.repoActive >= f.repoLimit) {
    return { ...base, waitingFor: "repo_capacity", note: `Queued (position ${position}): ${f.repoActive} of ${f.repoLimit} runs allowed on ${f.repo} are working; this one starts when one finishes.${behind}` };
  }
  return { ...base, waitingFor: "nothing", note: `Queued (position ${position}): starting shortly.` };
}

export interface QueueLimits {
  maxConcurrent: number;
  repoMax?: number | null;
  /** The provider breaker's words, when open (read from the shared breaker row). */
  providerNote?: () => Promise<string | null> | string | null;
}

/** The queue status of a queued run; null for any other status. */
export async function queueStatus(db: Db, run: Pick<Run, "id" | "status" | "repo" | "createdAt">, limits: QueueLimits): Promise<QueueStatus | null> {
  if (run.status !== "queued") return null;
  const count = sql<number>`count(*)::int`;
  const [[ahead], [active], [repoActive]] = await Promise.all([
    db.select({ n: count }).from(runs).where(and(eq(runs.status, "queued"), lt(runs.createdAt, run.createdAt))),
    db.select({ n: count }).from(runs).where(inArray(runs.status, [...WORKING_STATUSES])),
    db.select({ n: count }).from(runs).where(and(inArray(runs.status, [...WORKING_STATUSES]), eq(runs.repo, run.repo))),
  ]);
  return describeQueue({
    ahead: Number(ahead?.n ?? 0),
    active: Number(active?.n ?? 0),
    repoActive: Number(repoActive?.n ?? 0),
    limit: limits.maxConcurrent,
    repoLimit: limits.repoMax ?? null,
    repo: run.repo,
    providerNote: (await limits.providerNote?.()) ?? null,
  });
}
