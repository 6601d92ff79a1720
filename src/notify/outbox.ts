/**
 * The notification outbox: every message owed to a surface is a row first, then sent. A surface outage or a
 * server restart delays a message but never loses it; dedupe keys keep it from being queued twice; messages of
 * one ordering key go out in order; coalescing kinds (status edits) send only the newest.
 *
 * The dispatcher plans messages whenever a run changes (in any process, via NOTIFY); the sender claims due
 * rows with a lock that expires, so a crashed process's rows are picked up by another.
 */
import crypto from "node:crypto";
import { and, eq, sql } from "drizzle-orm";
import type { Db } from "../db/database.ts";
import { type Notification, notifications, surfaceState } from "../db/schema.ts";
import { readDigest } from "../events/digest-store.ts";
import type { Logger } from "../log/logger.ts";
import type { RunBus } from "../runs/run-bus.ts";
import type { RunStore } from "../runs/run-store.ts";
import { runView } from "../runs/run-view.ts";
import { answerSources } from "../runs/answers.ts";
import { backoffDelayMs } from "../runs/retry.ts";
import { FOREIGN_PROMPTS_MAX, RetryLater, type SendContext, type SurfaceNotifier } from "./notifier.ts";
import { observeFirstFeedback } from "../ops/metrics.ts";
import { RUN_ID, withSpan } from "../ops/tracing.ts";

export interface OutboxOptions {
  db: Db;
  store: RunStore;
  bus: RunBus;
  log: Logger;
  runPageUrl: (run: { pageToken: string }) => string;
  /** How often the sender looks for due messages. */
  pollMs?: number;
  /** Failed tries after which a message is given up (and only once it is older than `giveUpAfterMs`). */
  maxAttempts?: number;
  giveUpAfterMs?: number;
  /** Longest pause between two tries of a message (NOTIFY_MAX_BACKOFF_SECONDS); finals use FINAL_BACKOFF_CAP_MS. */
  maxBackoffMs?: number;
  /** Where a queued run stands (position, what it waits for), for the surfaces. */
  queueOf?: (run: import("../db/schema.ts").Run) => Promise<import("../runs/queue.ts").QueueStatus | null>;
}

/** A final result (or a message it waits behind) is retried at least this often during an outage. */
export const FINAL_BACKOFF_CAP_MS = 5_000;
/** Pending progress this old is stale (a real outage, not a blip): dropped when a final of its ordering key is pending. */
export const STALE_PROGRESS_MS = 10_000;

/** Pause before the next try after `attempts` failures: exponential from 500 ms, ±20 % jitter, never over `capMs`. */
export function backoffMs(attempts: number, capMs = 30_000, rand = Math.random()): number {
  return backoffDelayMs(attempts, { baseMs: 500, capMs, jitter: 0.4 }, rand);
}

export class Outbox {
  private readonly notifiers = new Map<string, SurfaceNotifier>();
  private readonly owner = `outbox-${process.pid}-${crypto.randomBytes(3).toString("hex")}`;
  private readonly pending = new Map<string, NodeJS.Timeout>();
  private readonly lastSent = new Map<string, number>();
  private readonly recoveredAt = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private unsub: (() => void) | null = null;
  private sending = false;
  private again = false;
  private stopped = false;

  constructor(private readonly o: OutboxOptions) {}

  private get maxBackoff(): number {
    return this.o.maxBackoffMs ?? 30_000;
  }

  /** Is this row a final, or the head of an ordering key with a final pending behind it? */
  private async blocksFinal(row: Notification): Promise<boolean> {
    if (row.role === "final") return true;
    const [f] = await this.o.db
      .select({ id: notifications.id })
      .from(notifications)
      .where(and(eq(notifications.orderingKey, row.orderingKey), eq(notifications.state, "pending"), eq(notifications.role, "final"), sql`${notifications.id} > ${row.id}`))
      .limit(1);
    return !!f;
  }

  register(n: SurfaceNotifier): void {
    this.notifiers.set(n.surface, n);
  }

  start(): void {
    this.unsub = this.o.bus.onRun((runId) => this.schedulePlan(runId));
    this.timer = setInterval(() => this.kick(), this.o.pollMs ?? 500);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsub?.();
    if (this.timer) clearInterval(this.timer);
    for (const t of this.pending.values()) clearTimeout(t);
    while (this.sending) await new Promise((r) => setTimeout(r, 20));
  }

  /** Debounce planning per run: bursts of events plan once. */
  private schedulePlan(runId: string): void {
    if (this.stopped || this.pending.has(runId) || !this.notifiers.size) return;
    this.pending.set(
      runId,
      setTimeout(() => {
        this.pending.delete(runId);
        this.planRun(runId).catch((e) => this.o.log.error({ err: e, runId }, "planning notifications failed"));
      }, 100),
    );
  }

  private ctx(surface: string): SendContext {
    return {
      getState: (runId) => this.getState(runId, surface),
      setState: (runId, patch) => this.setState(runId, surface, patch),
    };
  }

  async getState(runId: string, surface: string): Promise<Record<string, unknown>> {
    const [row] = await this.o.db.select().from(surfaceState).where(and(eq(surfaceState.runId, runId), eq(surfaceState.surface, surface)));
    return row?.state ?? {};
  }

  async setState(runId: string, surface: string, patch: Record<string, unknown>): Promise<void> {
    await this.o.db
      .insert(surfaceState)
      .values({ runId, surface, state: patch })
      .onConflictDoUpdate({
        target: [surfaceState.runId, surfaceState.surface],
        set: { state: sql`${surfaceState.state} || ${JSON.stringify(patch)}::jsonb`, updatedAt: new Date() },
      });
  }

  /** Plan what each interested surface owes for this run, and queue it. */
  async planRun(runId: string): Promise<number> {
    const run = await this.o.store.get(runId);
    if (!run) return 0;
    const interested = [...this.notifiers.values()].filter((n) => n.wants(run));
    if (!interested.length) return 0;
    const d = await readDigest(this.o.store.db, runId);
    const queue = run.status === "queued" && this.o.queueOf ? await this.o.queueOf(run) : null;
    const view = runView(run, d, this.o.runPageUrl(run), new Date(), queue);
    const foreignPrompts = await this.o.store.foreignPrompts(runId, run.source, FOREIGN_PROMPTS_MAX);
    const answers = d.settledQuestions.length ? await answerSources(this.o.store, runId) : undefined;
    let queued = 0;
    for (const n of interested) {
      const state = await this.getState(runId, n.surface);
      const plan = n.plan({ run, view, digest: d, state, now: new Date(), foreignPrompts, ...(answers ? { answers } : {}) });
      if (plan.state) await this.setState(runId, n.surface, plan.state);
      queued += await this.enqueue(runId, n.surface, plan.messages);
    }
    if (queued) this.kick();
    return queued;
  }

  async enqueue(runId: string | null, surface: string, messages: import("./notifier.ts").OutboxMessage[]): Promise<number> {
    if (!messages.length) return 0;
    const rows = await this.o.db
      .insert(notifications)
      .values(
        messages.map((m) => ({
          runId,
          surface,
          dedupeKey: m.dedupeKey,
          orderingKey: m.orderingKey,
          kind: m.coalesce ? `${m.kind}:coalesce` : m.kind,
          role: m.role ?? null,
          payload: m.payload,
        })),
      )
      .onConflictDoNothing()
      .returning({ id: notifications.id });
    return rows.length;
  }

  kick(): void {
    if (this.stopped) return;
    if (this.sending) {
      this.again = true;
      return;
    }
    this.sending = true;
    this.drain()
      .catch((e) => this.o.log.error({ err: e }, "outbox drain failed"))
      .finally(() => {
        this.sending = false;
        if (this.again && !this.stopped) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Claim due rows (the oldest pending row of each ordering key), send them, record the outcome. */
  async drain(): Promise<void> {
    await this.dropSupersededProgress();
    const claimed = (await this.o.db.execute(sql`
      update ${notifications} set locked_until = now() + interval '60 seconds', locked_by = ${this.owner}
      where id in (
        select n.id from ${notifications} n
        where n.state = 'pending' and n.next_attempt_at <= now() and (n.locked_until is null or n.locked_until < now())
          and not exists (select 1 from ${notifications} p where p.ordering_key = n.ordering_key and p.state = 'pending' and p.id < n.id)
        order by n.id limit 50
        for update skip locked)
      returning id`)) as unknown as { id: number }[] | { rows: { id: number }[] };
    const ids = (Array.isArray(claimed) ? claimed : claimed.rows).map((r) => Number(r.id));
    if (!ids.length) return;
    const rows = await this.o.db.select().from(notifications).where(sql`${notifications.id} in ${ids}`).orderBy(notifications.id);
    await Promise.all(rows.map((row) => this.sendOne(row)));
    this.again = true;
  }

  /**
   * Stale progress (still owed STALE_PROGRESS_MS after it was queued) queued before a pending final of the
   * same ordering key is dropped: after an outage the result goes out first, never behind old thoughts or edits.
   */
  private async dropSupersededProgress(): Promise<void> {
    const ms = STALE_PROGRESS_MS;
    await this.o.db.execute(sql`
      update ${notifications} p set state = 'dropped', response = jsonb_build_object('superseded', 'final')
      where p.state = 'pending' and p.role = 'progress'
        and (p.locked_until is null or p.locked_until < now())
        and p.created_at < now() - make_interval(secs => ${ms / 1000})
        and exists (select 1 from ${notifications} f where f.ordering_key = p.ordering_key and f.state = 'pending' and f.role = 'final' and f.id > p.id)`);
  }

  /**
   * A call to `surface` just succeeded: it answers again, so its messages waiting out a backoff are due now
   * (at most once a second per surface and process).
   */
  private async surfaceRecovered(surface: string): Promise<void> {
    const last = this.recoveredAt.get(surface) ?? 0;
    if (Date.now() - last < 1000) return;
    this.recoveredAt.set(surface, Date.now());
    const rows = await this.o.db
      .update(notifications)
      .set({ nextAttemptAt: sql`now()` })
      .where(
        and(
          eq(notifications.surface, surface),
          eq(notifications.state, "pending"),
          sql`${notifications.attempts} > 0`,
          sql`${notifications.nextAttemptAt} > now()`,
          sql`(${notifications.notBefore} is null or ${notifications.notBefore} <= now())`, // a rate limit's retry-after stands
        ),
      )
      .returning({ id: notifications.id });
    if (rows.length) {
      this.o.log.info({ surface, due: rows.length }, "surface answers again; retrying its owed messages now");
      this.again = true;
    }
  }

  /** The first message delivered for a run on a surface: how long after the run was created. */
  private async observeFirstFeedback(row: Notification): Promise<void> {
    const r = (await this.o.db.execute(
      sql`select extract(epoch from (now() - r.created_at))::float8 as age from runs r where r.id = ${row.runId}
          and not exists (select 1 from notifications n where n.run_id = r.id and n.surface = ${row.surface} and n.state = 'sent' and n.id <> ${row.id} and (n.response->>'superseded') is null)` as never,
    )) as unknown as { rows?: { age: number }[] } | { age: number }[];
    const first = (Array.isArray(r) ? r : (r.rows ?? []))[0];
    if (first) observeFirstFeedback(row.surface, Number(first.age));
  }

  private async sendOne(row: Notification): Promise<void> {
    const release = (patch: Partial<Notification>) =>
      this.o.db.update(notifications).set({ ...patch, lockedUntil: null, lockedBy: null }).where(and(eq(notifications.id, row.id), eq(notifications.lockedBy, this.owner)));
    const n = this.notifiers.get(row.surface);
    if (!n) return void (await release({}));
    if (row.kind.endsWith(":coalesce")) {
      const [newer] = await this.o.db
        .select({ id: notifications.id })
        .from(notifications)
        .where(and(eq(notifications.orderingKey, row.orderingKey), eq(notifications.kind, row.kind), eq(notifications.state, "pending"), sql`${notifications.id} > ${row.id}`))
        .limit(1);
      if (newer) return void (await release({ state: "sent", sentAt: new Date(), response: { superseded: newer.id } }));
    }
    const gap = (n.minIntervalMs ?? 0) - (Date.now() - (this.lastSent.get(row.orderingKey) ?? 0));
    if (gap > 0) return void (await release({ nextAttemptAt: new Date(Date.now() + gap) }));
    const log = this.o.log.child({ runId: row.runId, surface: row.surface, kind: row.kind, notification: row.id });
    try {
      const response = await withSpan(
        "notify.send",
        { [RUN_ID]: row.runId ?? "", "deckhand.surface": row.surface, "deckhand.kind": row.kind, "deckhand.attempt": row.attempts + 1 },
        () => n.send({ ...row, kind: row.kind.replace(/:coalesce$/, "") }, this.ctx(row.surface)),
      );
      this.lastSent.set(row.orderingKey, Date.now());
      await release({ state: "sent", sentAt: new Date(), response: response ?? {}, attempts: row.attempts + 1 });
      await this.surfaceRecovered(row.surface).catch((e) => log.warn({ err: (e as Error).message }, "could not bring the surface's messages forward"));
      if (row.runId) await this.observeFirstFeedback(row).catch((e) => log.warn({ err: (e as Error).message }, "first-feedback metric failed"));
    } catch (e) {
      const attempts = row.attempts + 1;
      const retry = e instanceof RetryLater;
      // Bounded by count and by time: a long outage does not lose a result that a short burst of tries would.
      const giveUp = attempts >= (this.o.maxAttempts ?? 50) && Date.now() - row.createdAt.getTime() >= (this.o.giveUpAfterMs ?? 60 * 60_000);
      if (retry && !giveUp) {
        const cap = (await this.blocksFinal(row)) ? Math.min(FINAL_BACKOFF_CAP_MS, this.maxBackoff) : this.maxBackoff;
        // A surface's own retry-after is honoured as given.
        const wait = Math.max(e.afterMs ?? 0, backoffMs(attempts, cap));
        log.warn({ err: (e as Error).message, attempts, retryInMs: wait }, "notification will be retried");
        const notBefore = e.afterMs ? new Date(Date.now() + e.afterMs) : null;
        await release({ attempts, nextAttemptAt: new Date(Date.now() + wait), notBefore, lastError: (e as Error).message.slice(0, 500) });
      } else {
        log.error({ err: (e as Error).message, attempts }, "notification failed for good");
        await release({ attempts, state: "dead", lastError: (e as Error).message.slice(0, 500) });
      }
    }
  }
}
