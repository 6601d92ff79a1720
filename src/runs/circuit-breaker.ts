/**
 * The sandbox provider's circuit breaker, as a pure evaluation of its row (table provider_breaker): after
 * `threshold` sandbox-creation failures in a row the row is opened (`opened_at`); for `cooldownMs` no new sandbox is
 * asked for; then one trial may go through (half-open; `trial_until` marks a trial in flight, and expires so a
 * process that died mid-trial does not hold it forever). A success closes it. Every process reads the same row, so
 * /healthz, the metrics and the queued runs tell the same story whichever process answers. The row's updates are
 * in provider-breaker.ts; this file does no I/O.
 */
export interface BreakerRow {
  consecutiveFailures: number;
  lastError: string | null;
  openedAt: Date | null;
  trialUntil: Date | null;
}

export interface BreakerConfig {
  /** Failures in a row that open the breaker. */
  threshold: number;
  /** How long an open breaker waits before it lets one trial through. */
  cooldownMs: number;
}

export interface BreakerStatus {
  state: "closed" | "open" | "half_open";
  consecutiveFailures: number;
  lastError: string | null;
  /** When an open breaker lets a trial through. */
  retryAt: string | null;
  /** May a new sandbox be asked for now: closed, or half-open with no trial in flight (then it is the trial). */
  mayTry: boolean;
}

export function evaluateBreaker(row: BreakerRow | null | undefined, now: Date, cfg: BreakerConfig): BreakerStatus {
  const failures = row?.consecutiveFailures ?? 0;
  const lastError = row?.lastError ?? null;
  if (!row?.openedAt) return { state: "closed", consecutiveFailures: failures, lastError, retryAt: null, mayTry: true };
  const retry = row.openedAt.getTime() + cfg.cooldownMs;
  const retryAt = new Date(retry).toISOString();
  if (now.getTime() < retry) return { state: "open", consecutiveFailures: failures, lastError, retryAt, mayTry: false };
  const trialInFlight = row.trialUntil !== null && row.trialUntil.getTime() > now.getTime();
  return { state: "half_open", consecutiveFailures: failures, lastError, retryAt, mayTry: !trialInFlight };
}

/** Did this failure (the row after its atomic increment) open the breaker? Exactly one process sees true. */
export function justOpened(failuresAfter: number, cfg: BreakerConfig): boolean {
  return failuresAfter === cfg.threshold;
}

/** Plain words for a waiting run and /healthz; null when closed. */
export function describeBreaker(s: BreakerStatus, providerName: string): string | null {
  if (s.state === "closed") return null;
  const at = s.retryAt ? ` Trying again at ${s.retryAt.slice(11, 19)} UTC.` : "";
  return `New sandboxes are paused: the ${providerName} sandbox provider failed ${s.consecutiveFailures} times in a row (last: ${s.lastError ?? "unknown error"}).${s.state === "open" ? at : " Trying again now."}`;
}
