/** The gateway's database edge: the run behind a model token, what has been spent, and recording usage. */
import { and, eq, sql, sum } from "drizzle-orm";
import type { Db } from "../db/database.ts";
import { modelUsage, type Run, runs } from "../db/schema.ts";
import { addUsage } from "../runs/run-store.ts";
import { microsToUsd, type TokenUsage } from "./prices.ts";

export const utcDay = (d = new Date()): string => d.toISOString().slice(0, 10);

export interface UsageRecord {
  model: string;
  status: number;
  usage: TokenUsage;
  costMicros: number;
  durationMs: number;
}

export interface UsageTotals {
  requests: number;
  input: number;
  output: number;
  cacheRead: number;
  cacheWrite: number;
  costUsd: number;
}

export class UsageStore {
  constructor(private readonly db: Db) {}

  async runByTokenHash(hash: string): Promise<Run | null> {
    const [r] = await this.db.select().from(runs).where(eq(runs.modelTokenHash, hash));
    return r ?? null;
  }

  async runById(id: string): Promise<Run | null> {
    const [r] = await this.db.select().from(runs).where(eq(runs.id, id));
    return r ?? null;
  }

  /** Micro-dollars spent on `day` (UTC) by `person`, or by everyone when `person` is null. */
  async daySpentMicros(day: string, person: string | null): Promise<number> {
    const where = person === null ? eq(modelUsage.day, day) : and(eq(modelUsage.day, day), eq(modelUsage.person, person));
    const [r] = await this.db.select({ c: sum(modelUsage.costMicros) }).from(modelUsage).where(where);
    return Number(r?.c ?? 0);
  }

  /**
   * One request's usage: a row for the sums per person/repo/day, and the run's running totals, atomically (one
   * statement: the insert in a WITH, so one round trip). Returns the run's row as updated.
   */
  async record(run: Pick<Run, "id" | "createdBy" | "repo">, r: UsageRecord, now = new Date()): Promise<Run | null> {
    const u = r.usage;
    const row = this.db.$with("usage_row").as(
      this.db
        .insert(modelUsage)
        .values({
          runId: run.id,
          person: run.createdBy,
          repo: run.repo,
          day: utcDay(now),
          model: r.model,
          status: r.status,
          input: u.input,
          output: u.output,
          cacheRead: u.cacheRead,
          cacheWrite: u.cacheWrite,
          costMicros: r.costMicros,
          durationMs: Math.round(r.durationMs),
        })
        .returning({ runId: modelUsage.runId }),
    );
    return addUsage(this.db, run.id, { ...u, costMicros: r.costMicros }, row);
  }

  /** Sums for a day (UTC), grouped by person, by repo, and in total. */
  async daySummary(day: string): Promise<{ day: string; total: UsageTotals; byPerson: (UsageTotals & { person: string | null })[]; byRepo: (UsageTotals & { repo: string })[] }> {
    const cols = {
      requests: sql<number>`count(*)::int`,
      input: sql<string>`coalesce(sum(${modelUsage.input}), 0)`,
      output: sql<string>`coalesce(sum(${modelUsage.output}), 0)`,
      cacheRead: sql<string>`coalesce(sum(${modelUsage.cacheRead}), 0)`,
      cacheWrite: sql<string>`coalesce(sum(${modelUsage.cacheWrite}), 0)`,
      cost: sql<string>`coalesce(sum(${modelUsage.costMicros}), 0)`,
    };
    const totals = (r: { requests: number; input: string; output: string; cacheRead: string; cacheWrite: string; cost: string }): UsageTotals => ({
      requests: Number(r.requests),
      input: Number(r.input),
      output: Number(r.output),
      cacheRead: Number(r.cacheRead),
      cacheWrite: Number(r.cacheWrite),
      costUsd: microsToUsd(Number(r.cost)),
    });
    const where = eq(modelUsage.day, day);
    const [all] = await this.db.select(cols).from(modelUsage).where(where);
    const people = await this.db.select({ person: modelUsage.person, ...cols }).from(modelUsage).where(where).groupBy(modelUsage.person);
    const repos = await this.db.select({ repo: modelUsage.repo, ...cols }).from(modelUsage).where(where).groupBy(modelUsage.repo);
    return {
      day,
      total: totals(all!),
      byPerson: people.map((r) => ({ person: r.person, ...totals(r) })),
      byRepo: repos.map((r) => ({ repo: r.repo, ...totals(r) })),
    };
  }
}
