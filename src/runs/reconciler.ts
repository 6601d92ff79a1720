/**
 * The reconciler: each server process runs this loop. It wakes on NOTIFY (a new run, an input, an idle agent)
 * and on a timer (the watchdog), asks `decideNext` what each run needs, takes the run's lease, and acts.
 * Leases expire, so work held by a dead process is taken over.
 */
import crypto from "node:crypto";
import os from "node:os";
import { and, asc, eq, inArray, isNotNull, isNull, lt, or, sql } from "drizzle-orm";
import type { Config } from "../config/config.ts";
import type { Db } from "../db/database.ts";
import { type Run, runInputs, runs } from "../db/schema.ts";
import { type Logger, runLog } from "../log/logger.ts";
import { SandboxError, type SandboxProvider } from "../sandbox/provider.ts";
import { CircuitBreaker } from "./circuit-breaker.ts";
import { type Action, decideNext } from "./decide.ts";
import { collectAndPush, type DeliverDeps } from "./deliver.ts";
import type { HostHeartbeat } from "./hosts.ts";
import { afterFailure, backoffDelayMs } from "./retry.ts";
import { destroyRunSandboxes, provision, ProvisionError, type ProvisionDeps, restartAgent } from "./provision.ts";
import type { RunBus } from "./run-bus.ts";
import type { RunStore } from "./run-store.ts";
import { isTerminal, transition } from "./state-machine.ts";
import { observeProvisioning } from "../ops/metrics.ts";
import { RUN_ID, withSpan } from "../ops/tracing.ts";

const CLAIM_LOCK = 7_406_222;

export interface ReconcilerDeps {
  db: Db;
  config: Config;
  store: RunStore;
  bus: RunBus;
  provider: SandboxProvider;
  provision: Omit<ProvisionDeps, "log">;
  deliver: Omit<DeliverDeps, "log">;
  log: Logger;
  /** Several hosts: this process's heartbeat (absent: every sandbox is this process's). */
  hosts?: HostHeartbeat;
  /** Override the tick interval (tests). */
  intervalMs?: number;
}

export class Reconciler {
  readonly owner = `${os.hostname()}:${process.pid}:${crypto.randomBytes(3).toString("hex")}`;
  private timer: NodeJS.Timeout | null = null;
  /** Wakes the loop when the earliest pending retry is due. */
  private retryTimer: NodeJS.Timeout | null = null;
  private unsub: (() => void) | null = null;
  private running = false;
  private again = false;
  private stopped = false;
  private readonly inFlight = new Map<string, Promise<void>>();
  /** Stops new sandboxes while the provider keeps failing (shown in /healthz and to queued runs). */
  readonly breaker: CircuitBreaker;

  constructor(private readonly deps: ReconcilerDeps) {
    this.breaker = new CircuitBreaker(deps.config.PROVIDER_BREAKER_THRESHOLD, deps.config.PROVIDER_BREAKER_COOLDOWN_SECONDS * 1000);
  }

  start(): void {
    const every = this.deps.intervalMs ?? this.deps.config.WATCHDOG_INTERVAL_SECONDS * 1000;
    this.timer = setInterval(() => this.kick(), every);
    this.unsub = this.deps.bus.onReconcile(() => this.kick());
    this.kick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.unsub?.();
    await Promise.allSettled([...this.inFlight.values()]);
  }

  /** Run a tick now, or right after the current one. */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    this.tick()
      .catch((e) => this.deps.log.error({ err: e }, "reconciler tick failed"))
      .finally(() => {
        this.running = false;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  private get limits() {
    const c = this.deps.config;
    return {
      heartbeatTimeoutMs: c.HEARTBEAT_TIMEOUT_SECONDS * 1000,
      provisionTimeoutMs: c.PROVISION_TIMEOUT_SECONDS * 1000,
      maxDurationMs: c.RUN_MAX_DURATION_SECONDS * 1000,
      relayConnectTimeoutMs: Math.max(60_000, c.HEARTBEAT_INTERVAL_SECONDS * 4000),
      maxProvisionAttempts: c.PROVISION_MAX_ATTEMPTS,
    };
  }

  async tick(): Promise<void> {
    const { db } = this.deps;
    while (!this.stopped && (await this.claimQueued())) {
      /* claimed one; try the next */
    }
    const candidates = await db
      .select()
      .from(runs)
      .where(
        or(
          inArray(runs.status, ["provisioning", "running", "idle"]),
          and(inArray(runs.status, ["closed", "failed", "cancelled"]), isNotNull(runs.sandboxProvider), isNull(runs.sandboxDestroyedAt)),
        ),
      );
    if (!candidates.length) return;
    const lastPrompt = await db
      .select({ runId: runInputs.runId, seq: sql<number>`max(${runInputs.seq})` })
      .from(runInputs)
      .where(and(eq(runInputs.kind, "prompt"), inArray(runInputs.runId, candidates.map((r) => r.id))))
      .groupBy(runInputs.runId);
    const lastBy = new Map(lastPrompt.map((r) => [r.runId, Number(r.seq)]));
    const now = new Date();
    const hosts = this.deps.hosts ? { me: this.deps.hosts.hostId, alive: await this.deps.hosts.aliveHosts() } : undefined;
    this.wakeForRetries(candidates, now);
    for (const run of candidates) {
      if (this.inFlight.has(run.id)) continue;
      const action = decideNext(run, { now, limits: this.limits, lastPromptSeq: lastBy.get(run.id) ?? 0, publicUrl: this.deps.config.PUBLIC_URL, hosts });
      if (action.kind === "none") continue;
      // A retry of an abandoned provisioning is a new sandbox too: not while the breaker is open.
      if (action.kind === "provision" && !this.breaker.allow()) continue;
      this.launch(run, action);
    }
  }

  /** A retry is due before the next timer tick: kick the loop then (a retry waits for its time, never longer). */
  private wakeForRetries(candidates: Run[], now: Date): void {
    const next = Math.min(...candidates.map((r) => (r.retryAt && r.retryAt > now ? r.retryAt.getTime() : Infinity)));
    if (!Number.isFinite(next)) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.kick(), Math.max(0, next - now.getTime()) + 20);
    this.retryTimer.unref();
  }

  /** Claim the oldest queued run if there is capacity: serialised across processes by an advisory lock. */
  private async claimQueued(): Promise<boolean> {
    const { db, config } = this.deps;
    const trial = this.breaker.status().state !== "closed";
    if (!this.breaker.allow()) return false;
    const repoMax = config.REPO_MAX_CONCURRENT_RUNS;
    const claimed = await db.transaction(async (tx) => {
      await tx.execute(sql`select pg_advisory_xact_lock(${CLAIM_LOCK})`);
      const [{ n }] = (await tx
        .select({ n: sql<number>`count(*)::int` })
        .from(runs)
        .where(inArray(runs.status, ["provisioning", "running"]))) as [{ n: number }];
      if (n >= config.MAX_CONCURRENT_RUNS) return null;
      // The oldest queued run whose repo is under its own limit (REPO_MAX_CONCURRENT_RUNS).
      const repoFull = repoMax
        ? sql`${runs.repo} not in (select repo from runs where status in ('provisioning', 'running') group by repo having count(*) >= ${repoMax})`
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
          leaseOwner: this.owner,
          leaseExpiresAt: new Date(now.getTime() + config.LEASE_SECONDS * 1000),
          phases: sql`${runs.phases} || ${JSON.stringify([{ phase: out.to, at: now.toISOString() }])}::jsonb`,
        })
        .where(and(eq(runs.id, next.id), eq(runs.status, "queued")))
        .returning();
      return row ?? null;
    });
    if (!claimed) {
      if (trial) this.breaker.neutral();
      return false;
    }
    await this.deps.bus.changed(claimed.id);
    this.launch(claimed, { kind: "provision" }, true);
    return true;
  }

  /** A sandbox could not be created: count it; when the breaker opens, tell the waiting runs' surfaces. */
  private async providerFailed(message: string): Promise<void> {
    const wasClosed = this.breaker.status().state === "closed";
    this.breaker.failure(message);
    if (wasClosed && this.breaker.status().state !== "closed") {
      this.deps.log.error({ provider: this.deps.provider.name, failures: this.breaker.status().consecutiveFailures, err: message }, "sandbox provider circuit breaker opened: no new sandboxes for a while");
      for (const q of await this.deps.store.byStatus(["queued"])) await this.deps.bus.changed(q.id);
    }
  }

  private async takeLease(runId: string): Promise<boolean> {
    const now = new Date();
    const rows = await this.deps.db
      .update(runs)
      .set({ leaseOwner: this.owner, leaseExpiresAt: new Date(now.getTime() + this.deps.config.LEASE_SECONDS * 1000) })
      .where(and(eq(runs.id, runId), or(isNull(runs.leaseExpiresAt), lt(runs.leaseExpiresAt, now), eq(runs.leaseOwner, this.owner))))
      .returning({ id: runs.id });
    return rows.length > 0;
  }

  /** Extend a lease this process holds; false when it is no longer ours (expired and taken, or released). */
  private async renewLease(runId: string): Promise<boolean> {
    const rows = await this.deps.db
      .update(runs)
      .set({ leaseExpiresAt: new Date(Date.now() + this.deps.config.LEASE_SECONDS * 1000) })
      .where(and(eq(runs.id, runId), eq(runs.leaseOwner, this.owner), sql`${runs.leaseExpiresAt} > now()`))
      .returning({ id: runs.id });
    return rows.length > 0;
  }

  private async releaseLease(runId: string): Promise<void> {
    await this.deps.db
      .update(runs)
      .set({ leaseOwner: null, leaseExpiresAt: null })
      .where(and(eq(runs.id, runId), eq(runs.leaseOwner, this.owner)));
  }

  private launch(run: Run, action: Action, leased = false): void {
    const job = (async () => {
      if (!leased && !(await this.takeLease(run.id))) return;
      const log = runLog(this.deps.log, run.id);
      const leaseMs = this.deps.config.LEASE_SECONDS * 1000;
      // A failed renewal (the lease was taken, or could not be renewed before it expired) aborts the work.
      const lease = new AbortController();
      let renewedAt = Date.now();
      const renew = setInterval(() => {
        this.renewLease(run.id)
          .then((ok) => (ok ? (renewedAt = Date.now()) : lease.abort(new LeaseLost(run.id))))
          .catch((e) => {
            log.warn({ err: (e as Error).message }, "could not renew the run's lease");
            if (Date.now() - renewedAt >= leaseMs) lease.abort(new LeaseLost(run.id));
          });
      }, leaseMs / 3);
      try {
        await this.act(run, action, lease.signal);
      } catch (e) {
        if (lease.signal.aborted) log.warn({ action: action.kind }, "lost the run's lease; the work in progress was abandoned to its new holder");
        else await this.actionFailed(run, action, e as Error).catch((e2) => log.error({ err: e2 }, "could not record a failed action"));
      } finally {
        clearInterval(renew);
        await this.releaseLease(run.id).catch(() => {});
      }
    })().finally(() => {
      if (action.kind === "provision") this.breaker.neutral(); // frees a half-open trial however the try ended
      this.inFlight.delete(run.id);
      this.kick();
    });
    this.inFlight.set(run.id, job);
  }

  /**
   * An action threw: try again after a growing pause (`retry_at`), and after DELIVERY_MAX_ATTEMPTS failures in a
   * row end the run with the last error. Written under the lease.
   */
  private async actionFailed(run: Run, action: Action, err: Error): Promise<void> {
    const { store, config } = this.deps;
    const log = runLog(this.deps.log, run.id);
    const fresh = await store.get(run.id);
    if (!fresh) return;
    const message = (err.message || String(err)).replace(/x-access-token:[^@\s]+/g, "x-access-token:***");
    const what = action.kind === "deliver" ? "Collecting and pushing the result" : `The ${action.kind} step`;
    const verdict = afterFailure(
      { attempts: fresh.retryAttempts + 1, maxAttempts: config.DELIVERY_MAX_ATTEMPTS, error: message, what, now: new Date() },
      { baseMs: config.RETRY_BASE_SECONDS * 1000, capMs: config.RETRY_MAX_SECONDS * 1000 },
    );
    const lease = { leaseOwner: this.owner };
    if (verdict.kind === "retry") {
      log.warn({ action: action.kind, attempts: verdict.attempts, retryAt: verdict.at.toISOString(), err: message.slice(0, 500) }, "reconciler action failed; will retry");
      await store.scheduleRetry(run.id, { at: verdict.at, attempts: verdict.attempts, error: message }, lease);
      return;
    }
    log.error({ action: action.kind, attempts: verdict.attempts, err: message.slice(0, 500) }, "reconciler action kept failing; giving up");
    if (isTerminal(fresh.status)) {
      await store.recordSandboxReleased(run.id, lease); // could not destroy it: the reaper is the backstop
      return;
    }
    const code = action.kind === "deliver" ? "delivery_failed" : "reconciler_failed";
    if (!(await store.transition(run.id, { type: "fail", code, reason: verdict.reason }, {}, lease))) {
      await store.scheduleRetry(run.id, { at: new Date(Date.now() + config.RETRY_MAX_SECONDS * 1000), attempts: verdict.attempts, error: message }, lease);
    }
  }

  /** Do one action, under the run's lease (`signal` aborts when the lease is lost). */
  private async act(run: Run, action: Action, signal: AbortSignal): Promise<void> {
    const { store, provider } = this.deps;
    const log = runLog(this.deps.log, run.id);
    const lease = { leaseOwner: this.owner };
    const fresh = await store.get(run.id);
    if (!fresh) return;
    /** Before each step with effects: stop if the lease was lost meanwhile. */
    const stillHeld = () => {
      if (signal.aborted) throw signal.reason ?? new LeaseLost(run.id);
    };
    switch (action.kind) {
      case "provision": {
        const attempts = fresh.attempts + 1;
        await store.phase(run.id, "provision_attempt", { attempts });
        log.info({ attempt: attempts, repo: run.repo }, "provisioning");
        const startedAt = performance.now();
        try {
          await withSpan("run.provision", { [RUN_ID]: run.id, "deckhand.attempt": attempts, "deckhand.provider": provider.name }, () =>
            provision(fresh, { ...this.deps.provision, log, hostId: this.deps.hosts?.hostId }),
          );
          observeProvisioning((performance.now() - startedAt) / 1000);
          this.breaker.success();
          return;
        } catch (e) {
          stillHeld();
          const pe =
            e instanceof ProvisionError
              ? e
              : e instanceof SandboxError // the provider's own words and retry advice (bad key, quota, ...)
                ? new ProvisionError(e.message, `sandbox_${e.code}`, e.retryable)
                : new ProvisionError((e as Error).message, "provision_error", true);
          log.warn({ code: pe.code, retryable: pe.retryable, attempt: attempts, err: pe.message }, "provisioning failed");
          if (pe.code.startsWith("sandbox_")) await this.providerFailed(pe.message);
          else this.breaker.neutral();
          if (pe.retryable && attempts < this.deps.config.PROVISION_MAX_ATTEMPTS) {
            await destroyRunSandboxes(provider, run.id, log).catch(() => 0);
            const at = new Date(Date.now() + backoffDelayMs(attempts, { baseMs: 2000, capMs: 30_000, jitter: 0 }));
            await store.scheduleRetry(run.id, { at, attempts, error: pe.message }, lease);
            return;
          }
          await store.transition(run.id, { type: "fail", reason: pe.message, code: pe.code }, {}, lease);
          return;
        }
      }
      case "deliver": {
        const sandbox = fresh.sandboxId ? await provider.get(fresh.sandboxId) : null;
        if (!sandbox) {
          const overLimit = fresh.sandboxId ? await provider.endReason?.(fresh.sandboxId).catch(() => null) : null;
          await store.transition(run.id, { type: "fail", code: "sandbox_lost", reason: overLimit ?? "The sandbox stopped before the result could be collected" }, {}, lease);
          return;
        }
        const idleSeq = fresh.idleInputSeq ?? 0;
        stillHeld();
        const { result, diff } = await withSpan("run.deliver", { [RUN_ID]: run.id }, () => collectAndPush(fresh, sandbox, { ...this.deps.deliver, log }));
        stillHeld();
        // Over budget is not a failure: the run goes idle so that a follow-up (`budget=+5`) can continue it.
        if (result.error && result.error.code !== "over_budget" && result.filesChanged.length === 0 && fresh.deliveredInputSeq === 0) {
          await store.transition(run.id, { type: "fail", reason: result.error.message, code: result.error.code }, { result, diff }, lease);
          return;
        }
        const keepaliveUntil = new Date(Date.now() + this.deps.config.RUN_KEEPALIVE_SECONDS * 1000);
        if (!(await store.transition(run.id, { type: "result_delivered" }, { result, diff, keepaliveUntil, deliveredInputSeq: idleSeq }, lease))) return;
        log.info({ files: result.filesChanged.length, pushed: result.pushed, url: result.url }, "result delivered; run is idle");
        // Providers that can pause (E2B with E2B_PAUSE_WHEN_IDLE) stop paying for the idle keep-alive.
        // Not when a follow-up came meanwhile: the relay may be handing it to OpenCode already.
        if ((await store.lastPromptSeq(run.id)) > idleSeq) return;
        const paused = await sandbox.suspendWhileIdle?.().catch((e: Error) => void log.warn({ err: e.message }, "could not pause the idle sandbox"));
        if (paused) log.info({ sandboxId: sandbox.id }, "sandbox paused while idle");
        return;
      }
      case "resume": {
        // Wake the sandbox (get() resumes a paused one) before the follow-up reaches the relay.
        const sandbox = fresh.sandboxId ? await provider.get(fresh.sandboxId) : null;
        if (fresh.sandboxId && !sandbox) {
          await store.transition(run.id, { type: "fail", code: "sandbox_lost", reason: "The sandbox stopped while the run was idle; start a new run" }, {}, lease);
          return;
        }
        // A local sandbox suspended while idle comes back without its processes: OpenCode and the relay start again.
        if (sandbox?.stoppedWhileIdle) await restartAgent(fresh, sandbox, { ...this.deps.provision, log });
        stillHeld();
        await store.transition(run.id, { type: "follow_up" }, { idleInputSeq: null, keepaliveUntil: null }, lease);
        return;
      }
      case "close":
        await store.transition(run.id, { type: "keepalive_expired" }, {}, lease);
        return;
      case "fail": {
        // A sandbox the provider stopped for going over a limit (fork bomb, memory hog): say that, plainly.
        const overLimit = fresh.sandboxId ? await provider.endReason?.(fresh.sandboxId).catch(() => null) : null;
        const reason = overLimit ?? action.reason;
        log.warn({ code: action.code, reason }, "failing run");
        await store.transition(run.id, { type: "fail", reason, code: action.code }, {}, lease);
        return;
      }
      case "destroy": {
        const n = await destroyRunSandboxes(provider, run.id, log);
        await store.recordSandboxReleased(run.id, lease);
        log.info({ destroyed: n }, "sandbox released");
        return;
      }
      case "forget_sandbox":
        await store.recordSandboxReleased(run.id, lease);
        log.info({ host: fresh.sandboxHost }, "the sandbox's host is gone; its reaper removes the sandbox if it comes back");
        return;
      case "none":
        return;
    }
  }
}

/** The lease on a run was lost (taken by another process after it expired): the work in progress stops. */
export class LeaseLost extends Error {
  constructor(runId: string) {
    super(`lost the lease on run ${runId}`);
    this.name = "LeaseLost";
  }
}
