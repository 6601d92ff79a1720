/**
 * What the reconciler should do next for one run: a pure function of the run's row, the time and the limits.
 * Every server process runs the same loop; a lease on the run makes sure only one of them acts.
 */
import type { Run } from "../db/schema.ts";
import { isTerminal } from "./state-machine.ts";
import { type WatchdogLimits, watchdogVerdict } from "./watchdog.ts";

export type Action =
  | { kind: "none" }
  | { kind: "provision" }
  | { kind: "deliver" }
  | { kind: "resume" }
  | { kind: "close" }
  | { kind: "destroy" }
  | { kind: "fail"; code: string; reason: string };

export interface DecideContext {
  now: Date;
  limits: WatchdogLimits & { maxProvisionAttempts: number };
  /** Highest prompt input seq queued for the run. */
  lastPromptSeq: number;
  publicUrl?: string;
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
>;

/** Phases since the current provisioning attempt began. */
export function currentAttemptPhases(phases: { phase: string; at: string }[]) {
  let i = phases.length - 1;
  while (i >= 0 && phases[i]!.phase !== "provision_attempt") i--;
  return i < 0 ? [] : phases.slice(i);
}

export function decideNext(run: RunFacts, ctx: DecideContext): Action {
  const { now } = ctx;
  const leaseFree = !run.leaseExpiresAt || run.leaseExpiresAt.getTime() <= now.getTime();

  if (isTerminal(run.status)) {
    return run.sandboxProvider && !run.sandboxDestroyedAt ? { kind: "destroy" } : { kind: "none" };
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

  if (run.status === "provisioning") {
    // A provisioner holds the lease while it works. A free lease before the relay started means the process
    // that was provisioning died (or a retryable failure backed off): try again, a bounded number of times.
    if (leaseFree && !relayStarted) {
      if (run.attempts >= ctx.limits.maxProvisionAttempts) {
        return { kind: "fail", code: "provision_failed", reason: `Starting the sandbox failed ${run.attempts} times; giving up` };
      }
      return { kind: "provision" };
    }
    return { kind: "none" };
  }
  if (run.status === "running") {
    const idleSeq = run.idleInputSeq ?? 0;
    if (idleSeq > run.deliveredInputSeq && idleSeq >= ctx.lastPromptSeq) return { kind: "deliver" };
    return { kind: "none" };
  }
  if (run.status === "idle") {
    if (ctx.lastPromptSeq > run.deliveredInputSeq) return { kind: "resume" };
    if (run.keepaliveUntil && run.keepaliveUntil.getTime() <= now.getTime()) return { kind: "close" };
  }
  return { kind: "none" };
}
