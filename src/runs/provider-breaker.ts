/**
 * The provider breaker's row (table provider_breaker), shared by every server process: sandbox-creation outcomes
 * are recorded as atomic SQL updates, and the state is always `evaluateBreaker(row, now, cfg)` (circuit-breaker.ts,
 * pure). So /healthz, the metrics and the queued runs say the same thing in every process, and a breaker opened by
 * failures seen in one process stops new sandboxes in all of them.
 */
import { and, eq, isNotNull, isNull, lte, or, sql } from "drizzle-orm";
import type { Db } from "../db/database.ts";
import { providerBreaker } from "../db/schema.ts";
import type { Logger } from "../log/logger.ts";
import { type BreakerConfig, type BreakerRow, type BreakerStatus, describeBreaker, evaluateBreaker, justOpened } from "./circuit-breaker.ts";

const MAX_ERROR_CHARS = 500;

export class ProviderBreaker {
  /** The `trial_until` this process wrote when it took the half-open trial (its token to give it back). */
  private trialToken: Date | null = null;

  constructor(
    private readonly db: Db,
    readonly provider: string,
    /** `trialMs`: how long a trial may hold the half-open slot before another process may try (a provision attempt's bound). */
    private readonly cfg: BreakerConfig & { trialMs: number },
    private readonly log?: Logger,
  ) {}

  async row(): Promise<BreakerRow | null> {
    const [r] = await this.db
      .select({ consecutiveFailures: providerBreaker.consecutiveFailures, lastError: providerBreaker.lastError, openedAt: providerBreaker.openedAt, trialUntil: providerBreaker.trialUntil })
      .from(providerBreaker)
      .where(eq(providerBreaker.provider, this.provider));
    return r ?? null;
  }

  async status(now = new Date()): Promise<BreakerStatus> {
    return evaluateBreaker(await this.row(), now, this.cfg);
  }

  /** Plain words for a waiting run and /healthz; null when closed. */
  async describe(now = new Date()): Promise<string | null> {
    return describeBreaker(await this.status(now), this.provider);
  }

  /** May a new sandbox be created now? Half-open: only the one process that takes the trial (atomically) may. */
  async allow(now = new Date()): Promise<boolean> {
    const s = await this.status(now);
    if (s.state === "closed") return true;
    if (!s.mayTry) return false;
    const until = new Date(now.getTime() + this.cfg.trialMs);
    const cooledBefore = new Date(now.getTime() - this.cfg.cooldownMs);
    const took = await this.db
      .update(providerBreaker)
      .set({ trialUntil: until, updatedAt: now })
      .where(
        and(
          eq(providerBreaker.provider, this.provider),
          isNotNull(providerBreaker.openedAt),
          lte(providerBreaker.openedAt, cooledBefore),
          or(isNull(providerBreaker.trialUntil), lte(providerBreaker.trialUntil, now)),
        ),
      )
      .returning({ trialUntil: providerBreaker.trialUntil });
    if (!took.length) return false;
    this.trialToken = until;
    return true;
  }

  /** A sandbox was created: the breaker closes. */
  async success(now = new Date()): Promise<void> {
    this.trialToken = null;
    await this.db
      .insert(providerBreaker)
      .values({ provider: this.provider, consecutiveFailures: 0, updatedAt: now })
      .onConflictDoUpdate({ target: providerBreaker.provider, set: { consecutiveFailures: 0, lastError: null, openedAt: null, trialUntil: null, updatedAt: now } })
      .catch((err) => this.log?.warn({ err, provider: this.provider }, "could not record a sandbox provider success"));
  }

  /** A sandbox could not be created: one more failure in a row (atomic). `opened`: this failure opened the breaker. */
  async failure(message: string, now = new Date()): Promise<{ opened: boolean; status: BreakerStatus }> {
    this.trialToken = null;
    const error = message.slice(0, MAX_ERROR_CHARS);
    const at = now.toISOString();
    const [row] = await this.db
      .insert(providerBreaker)
      .values({ provider: this.provider, consecutiveFailures: 1, lastError: error, openedAt: this.cfg.threshold <= 1 ? now : null, updatedAt: now })
      .onConflictDoUpdate({
        target: providerBreaker.provider,
        set: {
          consecutiveFailures: sql`${providerBreaker.consecutiveFailures} + 1`,
          lastError: error,
          openedAt: sql`case when ${providerBreaker.consecutiveFailures} + 1 >= ${this.cfg.threshold} then ${at}::timestamptz else ${providerBreaker.openedAt} end`,
          trialUntil: null,
          updatedAt: now,
        },
      })
      .returning({ consecutiveFailures: providerBreaker.consecutiveFailures, lastError: providerBreaker.lastError, openedAt: providerBreaker.openedAt, trialUntil: providerBreaker.trialUntil });
    return { opened: justOpened(row?.consecutiveFailures ?? 0, this.cfg), status: evaluateBreaker(row, now, this.cfg) };
  }

  /** A try that ended without telling us about the provider (e.g. the clone failed): gives back this process's trial. */
  async neutral(): Promise<void> {
    const token = this.trialToken;
    if (!token) return;
    this.trialToken = null;
    await this.db
      .update(providerBreaker)
      .set({ trialUntil: null })
      .where(and(eq(providerBreaker.provider, this.provider), eq(providerBreaker.trialUntil, token)))
      .catch((err) => this.log?.warn({ err, provider: this.provider }, "could not give back the breaker's trial"));
  }
}
