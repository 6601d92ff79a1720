/**
 * The watchdog's verdict on one run, as a pure function of what the database knows about it.
 * Liveness comes from the in-sandbox relay's heartbeats (is OpenCode's process alive?), never from model
 * output: fifteen minutes of silent reasoning with heartbeats flowing is healthy.
 */
import type { FailureCode } from "./model.ts";

export interface WatchdogLimits {
  heartbeatTimeoutMs: number;
  provisionTimeoutMs: number;
  maxDurationMs: number;
  /** How long a started relay may take to send its first event before we blame PUBLIC_URL. */
  relayConnectTimeoutMs: number;
}

export interface WatchdogInput {
  status: string;
  createdAt: Date;
  /** When the current status began (provisioning start, running start). */
  statusSince: Date;
  startedAt: Date | null;
  lastHeartbeatAt: Date | null;
  opencodeAlive: boolean | null;
  /** When the relay process was started in this provisioning attempt (null: not yet). */
  relayStartedAt?: Date | null;
  /** Has any relay event been stored? */
  relayConnected?: boolean;
  publicUrl?: string;
}

export type WatchdogVerdict = { verdict: "ok" } | { verdict: "fail"; code: FailureCode; reason: string };

const secs = (ms: number) => `${Math.round(ms / 1000)} s`;
const mins = (ms: number) => (ms >= 120_000 ? `${Math.round(ms / 60_000)} min` : secs(ms));

export function watchdogVerdict(run: WatchdogInput, now: Date, limits: WatchdogLimits): WatchdogVerdict {
  const t = now.getTime();
  if (run.status === "provisioning") {
    const took = t - run.statusSince.getTime();
    if (took > limits.provisionTimeoutMs) {
      return { verdict: "fail", code: "provision_timeout", reason: `Starting the sandbox took longer than ${mins(limits.provisionTimeoutMs)}` };
    }
    if (run.relayStartedAt && !run.relayConnected && t - run.relayStartedAt.getTime() > limits.relayConnectTimeoutMs) {
      return {
        verdict: "fail",
        code: "relay_unreachable",
        reason: `The sandbox could not reach Deckhand${run.publicUrl ? ` at ${run.publicUrl}` : ""} within ${secs(limits.relayConnectTimeoutMs)}: check PUBLIC_URL`,
      };
    }
    return { verdict: "ok" };
  }
  if (run.status !== "running") return { verdict: "ok" };

  const since = run.startedAt ?? run.statusSince;
  if (t - since.getTime() > limits.maxDurationMs) {
    return { verdict: "fail", code: "max_duration", reason: `The run exceeded its maximum duration of ${mins(limits.maxDurationMs)}` };
  }
  // lastHeartbeatAt only moves while the relay reports OpenCode alive and answering; a process that died is
  // reported by the relay at once (deckhand.opencode_exited) and failed by the receiver.
  // The clock restarts when the run (re)enters running: a sandbox paused while idle sent no heartbeats.
  const lastSign = run.lastHeartbeatAt && run.lastHeartbeatAt > run.statusSince ? run.lastHeartbeatAt : run.statusSince;
  if (t - lastSign.getTime() > limits.heartbeatTimeoutMs) {
    if (run.opencodeAlive === false) {
      return { verdict: "fail", code: "agent_unresponsive", reason: `The agent (OpenCode) stopped answering for ${secs(t - lastSign.getTime())}` };
    }
    return {
      verdict: "fail",
      code: "sandbox_silent",
      reason: `The sandbox stopped responding (no heartbeat for ${secs(t - lastSign.getTime())})`,
    };
  }
  return { verdict: "ok" };
}
