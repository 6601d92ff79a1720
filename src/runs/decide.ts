/**
 * What the reconciler should do next for one run: a pure function of the run's row, the time and the limits.
 * Every server process runs the same loop; a lease on the run makes sure only one of them acts.
 */
import type { Config } from "../config/config.ts";
import type { Run } from "../db/schema.ts";
import { hostGoneReason, sandboxOwnership } from "./hosts.ts";
import { backoffDelayMs, retryPending } from "./retry.ts";
import { asFailureCode, type FailureCode, isTerminal, type RunResult } from "./model.ts";
import { type WatchdogLimits, watchdogVerdict } from "./watchdog.ts";

export type Action =
  | { kind: "none" }
  | { kind: "provision" }
  | { kind: "deliver" }
  | { kind: "resume" }
  | { kind: "close" }
  | { kind: "destroy" }
  /** The terminal run's sandbox lived on a host that is gone: record it as released (its host's reaper kills it on return). */
  | { kind: "forget_sandbox" }
  | { kind: "fail"; code: FailureCode; reason: string };

export type DecideLimits = WatchdogLimits & { maxProvisionAttempts: number };

/** The limits `decideNext` works with, from the configuration. */
export function decideLimits(c: Pick<Config, "HEARTBEAT_TIMEOUT_SECONDS" | "PROVISION_TIMEOUT_SECONDS" | "RUN_MAX_DURATION_SECONDS" | "HEARTBEAT_INTERVAL_SECONDS" | "PROVISION_MAX_ATTEMPTS">): DecideLimits {
  return {
    heartbeatTimeoutMs: c.HEARTBEAT_TIMEOUT_SECONDS * 1000,
    provisionTimeoutMs: c.PROVISION_TIMEOUT_SECONDS * 1000,
    maxDurationMs: c.RUN_MAX_DURATION_SECONDS * 1000,
    relayConnectTimeoutMs: Math.max(60_000, c.HEARTBEAT_INTERVAL_SECONDS * 4000),
    maxProvisionAttempts: c.PROVISION_MAX_ATTEMPTS,
  };
}

export interface DecideContext {
  now: Date;
  limits: DecideLimits;
  /** Highest prompt input seq queued for the run. */
  lastPromptSeq: number;
  publicUrl?: string;
  /** Several hosts: this process's host and the hosts alive now. Absent: every sandbox is this host's. */
  hosts?: { me: string; alive: ReadonlySet<string> };
}

type RunFacts = Pick<
  Run,
  | "status"
  | "createdAt"
  | "statusChangedAt"
  | "startedAt"
  | "lastHeartbeatAt"
  | "opencodeAlive"
  | "phases"
  | "attempts"
  | "leaseExpiresAt"
  | "idleInputSeq"
  | "deliveredInputSeq"
  | "keepaliveUntil"
  | "sandboxProvider"
  | "sandboxDestroyedAt"
  | "lastEventSeq"
> &
  Partial<Pick<Run, "retryAt" | "sandboxHost">>;

/** Phases since the current provisioning attempt began. */
export function currentAttemptPhases(phases: { phase: string; at: string }[]) {
  let i = phases.length - 1;
  while (i >= 0 && phases[i]!.phase !== "provision_attempt") i--;
  return i < 0 ? [] : phases.slice(i);
}

export function decideNext(run: RunFacts, ctx: DecideContext): Action {
  const { now } = ctx;
  const leaseFree = !run.leaseExpiresAt || run.leaseExpiresAt.getTime() <= now.getTime();

  const owner = ctx.hosts ? sandboxOwnership(run.sandboxHost ?? null, ctx.hosts.me, ctx.hosts.alive) : "any";
  const waiting = retryPending(run.retryAt ?? null, now);

  if (isTerminal(run.status)) {
    if (!run.sandboxProvider || run.sandboxDestroyedAt) return { kind: "none" };
    if (owner === "other_alive") return { kind: "none" };
    return owner === "owner_gone" ? { kind: "forget_sandbox" } : { kind: "destroy" };
  }
  if (run.status === "queued") return { kind: "provision" };

  const attempt = currentAttemptPhases(run.phases);
  const relayStarted = attempt.find((p) => p.phase === "relay_started");
  const verdict = watchdogVerdict(
    {
      status: run.status,
      createdAt: run.createdAt,
      statusSince: run.statusChangedAt,
      startedAt: run.startedAt,
      lastHeartbeatAt: run.lastHeartbeatAt,
      opencodeAlive: run.opencodeAlive,
      relayStartedAt: relayStarted ? new Date(relayStarted.at) : null,
      relayConnected: run.lastEventSeq > 0,
      publicUrl: ctx.publicUrl,
    },
    now,
    ctx.limits,
  );
  if (verdict.verdict === "fail") return { kind: "fail", code: verdict.code, reason: verdict.reason };

  // The sandbox's host is gone: nobody else can reach it. (A provisioning that never got its relay going is
  // simply started again below, on whichever host takes it.)
  if (owner === "owner_gone" && (run.status !== "provisioning" || relayStarted)) {
    return { kind: "fail", code: "host_gone", reason: hostGoneReason(run.sandboxHost!) };
  }

  if (run.status === "provisioning") {
    // A provisioner holds the lease while it works. A free lease before the relay started means the process
    // that was provisioning died (or a retryable failure backed off): try again, a bounded number of times.
    if (leaseFree && !relayStarted && !waiting) {
      if (run.attempts >= ctx.limits.maxProvisionAttempts) {
        return { kind: "fail", code: "provision_failed", reason: `Starting the sandbox failed ${run.attempts} times; giving up` };
      }
      return { kind: "provision" };
    }
    return { kind: "none" };
  }
  // Everything below acts on the sandbox: only its host does, and not before a pending retry time.
  if (owner === "other_alive" || waiting) return { kind: "none" };
  if (run.status === "running") {
    const idleSeq = run.idleInputSeq ?? 0;
    if (idleSeq > run.deliveredInputSeq && idleOwesResult(idleSeq, ctx.lastPromptSeq)) return { kind: "deliver" };
    return { kind: "none" };
  }
  if (run.status === "idle") {
    if (ctx.lastPromptSeq > run.deliveredInputSeq) return { kind: "resume" };
    if (run.keepaliveUntil && run.keepaliveUntil.getTime() <= now.getTime()) return { kind: "close" };
  }
  return { kind: "none" };
}

/**
 * The relay reports the agent idle after seeing prompts up to `idleSeq`: it counts (a result is owed) only when the
 * agent has seen every prompt queued so far; a newer prompt keeps the run working.
 */
export function idleOwesResult(idleSeq: number, lastPromptSeq: number): boolean {
  return idleSeq >= lastPromptSeq;
}

export type ProvisionFailureVerdict = { kind: "retry"; at: Date } | { kind: "fail"; code: FailureCode; reason: string };

/** A provisioning attempt failed: try again after a growing pause while the error is retryable and tries are left. */
export function afterProvisionFailure(
  f: { attempts: number; maxAttempts: number; retryable: boolean; code: FailureCode; message: string; now: Date },
): ProvisionFailureVerdict {
  if (f.retryable && f.attempts < f.maxAttempts) {
    return { kind: "retry", at: new Date(f.now.getTime() + backoffDelayMs(f.attempts, PROVISION_BACKOFF)) };
  }
  return { kind: "fail", code: f.code, reason: f.message };
}
const PROVISION_BACKOFF = { baseMs: 2000, capMs: 30_000, jitter: 0 };

export type DeliveryVerdict = { kind: "idle" } | { kind: "fail"; code: FailureCode; reason: string };

/**
 * A result was collected: the run goes idle (kept for follow-ups), or fails when the agent's error is all there is
 * (no change, and nothing delivered before). Over budget is not a failure: a follow-up (`budget=+5`) continues it.
 */
export function afterDelivery(result: Pick<RunResult, "error" | "filesChanged">, deliveredInputSeq: number): DeliveryVerdict {
  const err = result.error;
  if (err && err.code !== "over_budget" && result.filesChanged.length === 0 && deliveredInputSeq === 0) {
    return { kind: "fail", code: asFailureCode(err.code), reason: err.message };
  }
  return { kind: "idle" };
}
