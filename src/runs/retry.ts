/**
 * Retry timing for the run core, as pure functions: exponential backoff with a cap (and jitter), and the verdict
 * after a failed action — try again at a given time, or give up with the reason. The time of the next try is its
 * own column on the run (`retry_at`), never the lease.
 */

export interface BackoffPolicy {
  baseMs: number;
  capMs: number;
  /** 0..1: the delay is spread by ±jitter/2 (default 0.2), so processes do not retry in lockstep. */
  jitter?: number;
}

/** Delay before try `attempt + 1`, after `attempt` (≥ 1) failures in a row. `rand` in [0,1) (tests pass a fixed one). */
export function backoffDelayMs(attempt: number, p: BackoffPolicy, rand = Math.random()): number {
  const exp = Math.min(p.capMs, p.baseMs * 2 ** Math.min(30, Math.max(0, attempt - 1)));
  const j = p.jitter ?? 0.2;
  return Math.min(p.capMs, Math.max(0, Math.round(exp * (1 - j / 2 + rand * j))));
}

export type RetryVerdict = { kind: "retry"; at: Date; attempts: number } | { kind: "give_up"; attempts: number; reason: string };

/** What to do after an action failed for the `attempts`-th time in a row. */
export function afterFailure(
  input: { attempts: number; maxAttempts: number; error: string; what: string; now: Date },
  p: BackoffPolicy,
  rand = Math.random(),
): RetryVerdict {
  const error = input.error.trim().slice(0, 300) || "unknown error";
  if (input.attempts >= input.maxAttempts) {
    return { kind: "give_up", attempts: input.attempts, reason: `${input.what} failed ${input.attempts} times; giving up. Last error: ${error}` };
  }
  return { kind: "retry", attempts: input.attempts, at: new Date(input.now.getTime() + backoffDelayMs(input.attempts, p, rand)) };
}

/** Is a run's action held back by a pending retry time? */
export function retryPending(retryAt: Date | null, now: Date): boolean {
  return !!retryAt && retryAt.getTime() > now.getTime();
}
