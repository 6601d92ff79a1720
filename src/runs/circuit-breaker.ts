/**
 * The sandbox provider's circuit breaker: after `threshold` sandbox-creation failures in a row, no new sandbox
 * is asked for during `cooldownMs`; then one trial goes through (half-open). A success closes it. Per server
 * process (each process counts what it saw). Pure state + the clock passed in: unit-testable without I/O.
 */
export interface BreakerStatus {
  state: "closed" | "open" | "half_open";
  consecutiveFailures: number;
  lastError: string | null;
  /** When an open breaker lets a trial through. */
  retryAt: string | null;
}

export class CircuitBreaker {
  private failures = 0;
  private lastError: string | null = null;
  private openedAt: number | null = null;
  private trialInFlight = false;

  constructor(
    readonly threshold: number,
    readonly cooldownMs: number,
  ) {}

  /** May a new sandbox be created now? In half-open state, only one trial at a time. */
  allow(now = Date.now()): boolean {
    if (this.openedAt === null) return true;
    if (now - this.openedAt < this.cooldownMs || this.trialInFlight) return false;
    this.trialInFlight = true;
    return true;
  }

  success(): void {
    this.failures = 0;
    this.openedAt = null;
    this.trialInFlight = false;
    this.lastError = null;
  }

  failure(message: string, now = Date.now()): void {
    this.failures++;
    this.lastError = message;
    this.trialInFlight = false;
    if (this.failures >= this.threshold) this.openedAt = now;
  }

  /** A try that ended without telling us about the provider (e.g. the clone failed): frees the trial slot. */
  neutral(): void {
    this.trialInFlight = false;
  }

  status(now = Date.now()): BreakerStatus {
    const state = this.openedAt === null ? "closed" : now - this.openedAt < this.cooldownMs ? "open" : "half_open";
    return {
      state,
      consecutiveFailures: this.failures,
      lastError: this.lastError,
      retryAt: this.openedAt === null ? null : new Date(this.openedAt + this.cooldownMs).toISOString(),
    };
  }

  /** Plain words for a waiting run and /healthz; null when closed. */
  describe(providerName: string, now = Date.now()): string | null {
    const s = this.status(now);
    if (s.state === "closed") return null;
    const at = s.retryAt ? ` Trying again at ${s.retryAt.slice(11, 19)} UTC.` : "";
    return `New sandboxes are paused: the ${providerName} sandbox provider failed ${s.consecutiveFailures} times in a row (last: ${s.lastError ?? "unknown error"}).${s.state === "open" ? at : " Trying again now."}`;
  }
}
