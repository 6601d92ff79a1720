/**
 * The reconciler: each server process runs this loop. It wakes on NOTIFY (a new run, an input, an idle agent)
 * and on a timer (the watchdog), asks `decideNext` what each run needs, takes the run's lease, and dispatches the
 * action (runs/actions/). Leases expire, so work held by a dead process is taken over; every write made under a
 * lease is conditioned on still holding it, and a lost lease aborts the work in progress.
 */
import crypto from "node:crypto";
import os from "node:os";
import type { Config } from "../config/config.ts";
import type { Db } from "../db/database.ts";
import type { Run } from "../db/schema.ts";
import { type Logger, runLog } from "../log/logger.ts";
import type { SandboxProvider } from "../sandbox/provider.ts";
import { type ActionContext, actionFailed, runAction } from "./actions/index.ts";
import { ProviderBreaker } from "./provider-breaker.ts";
import { type Action, decideLimits, decideNext } from "./decide.ts";
import type { DeliverDeps } from "./deliver.ts";
import type { HostHeartbeat } from "./hosts.ts";
import { LeaseLost, underLease } from "./lease.ts";
import type { ProvisionDeps } from "./provision.ts";
import type { RunBus } from "./run-bus.ts";
import type { RunStore } from "./run-store.ts";

export { LeaseLost } from "./lease.ts";

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
  readonly breaker: ProviderBreaker;

  constructor(private readonly deps: ReconcilerDeps) {
    const c = deps.config;
    this.breaker = new ProviderBreaker(deps.db, deps.provider.name, { threshold: c.PROVIDER_BREAKER_THRESHOLD, cooldownMs: c.PROVIDER_BREAKER_COOLDOWN_SECONDS * 1000, trialMs: c.PROVISION_TIMEOUT_SECONDS * 1000 }, deps.log);
  }

  start(): void {
    this.timer = setInterval(() => this.kick(), this.deps.intervalMs ?? this.deps.config.WATCHDOG_INTERVAL_SECONDS * 1000);
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

  private get leaseMs(): number {
    return this.deps.config.LEASE_SECONDS * 1000;
  }

  async tick(): Promise<void> {
    const { config, store } = this.deps;
    while (!this.stopped && (await this.claimQueued())) {
      /* claimed one; try the next */
    }
    const { runs, lastPromptSeq } = await store.reconcileCandidates();
    if (!runs.length) return;
    const now = new Date();
    const hosts = this.deps.hosts ? { me: this.deps.hosts.hostId, alive: await this.deps.hosts.aliveHosts() } : undefined;
    const limits = decideLimits(config);
    this.wakeForRetries(runs, now);
    for (const run of runs) {
      if (this.inFlight.has(run.id)) continue;
      const action = decideNext(run, { now, limits, lastPromptSeq: lastPromptSeq.get(run.id) ?? 0, publicUrl: config.PUBLIC_URL, hosts });
      if (action.kind === "none") continue;
      // A retry of an abandoned provisioning is a new sandbox too: not while the breaker is open.
      if (action.kind === "provision" && !(await this.breaker.allow())) continue;
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

  /** Claim the oldest queued run if there is capacity (and the provider's breaker lets a new sandbox through). */
  private async claimQueued(): Promise<boolean> {
    const { config, store } = this.deps;
    if (!(await this.breaker.allow())) return false;
    const claimed = await store.leases.claimQueued(this.owner, { ms: this.leaseMs, maxConcurrent: config.MAX_CONCURRENT_RUNS, repoMax: config.REPO_MAX_CONCURRENT_RUNS });
    if (!claimed) {
      await this.breaker.neutral();
      return false;
    }
    await this.deps.bus.changed(claimed.id);
    this.launch(claimed, { kind: "provision" }, true);
    return true;
  }

  /** A sandbox could not be created: count it; when the breaker opens, tell the waiting runs' surfaces. */
  private async providerFailed(message: string): Promise<void> {
    const { opened, status } = await this.breaker.failure(message);
    if (opened) {
      this.deps.log.error({ provider: this.deps.provider.name, failures: status.consecutiveFailures, err: message }, "sandbox provider circuit breaker opened: no new sandboxes for a while");
      for (const q of await this.deps.store.byStatus(["queued"])) await this.deps.bus.changed(q.id);
    }
  }

  /** Take the run's lease (unless already claimed with it) and do the action under it. */
  private launch(run: Run, action: Action, leased = false): void {
    const { store } = this.deps;
    const job = (async () => {
      if (!leased && !(await store.leases.take(run.id, this.owner, this.leaseMs))) return;
      const log = runLog(this.deps.log, run.id);
      await underLease(store.leases, run.id, { owner: this.owner, ms: this.leaseMs, log }, async (lease) => {
        const fresh = await store.get(run.id);
        if (!fresh) return;
        const { provider, config, provision, deliver } = this.deps;
        const ctx: ActionContext = { run: fresh, lease, store, provider, config, log, breaker: this.breaker, provision, deliver, hostId: this.deps.hosts?.hostId, providerFailed: (m) => this.providerFailed(m) };
        try {
          await runAction(ctx, action);
        } catch (e) {
          if (lease.signal.aborted || e instanceof LeaseLost) log.warn({ action: action.kind }, "lost the run's lease; the work in progress was abandoned to its new holder");
          else await actionFailed(ctx, action, e as Error).catch((e2) => log.error({ err: e2 }, "could not record a failed action"));
        }
      });
    })().finally(() => {
      if (action.kind === "provision") void this.breaker.neutral(); // frees a half-open trial however the try ended
      this.inFlight.delete(run.id);
      this.kick();
    });
    this.inFlight.set(run.id, job);
  }
}
