/** When to try the provider again: 429 and 5xx (and unreachable), honouring Retry-After within a bound. Pure. */
export interface RetryPolicy {
  maxRetries: number;
  /** Longest wait honoured (a Retry-After beyond it is not waited for: the error goes to the agent). */
  maxWaitMs: number;
  baseMs?: number;
}

export const retryableStatus = (status: number): boolean => status === 429 || status === 408 || status >= 500;

/** Retry-After as seconds or an HTTP date → milliseconds; null when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | null {
  if (!value) return null;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/**
 * The delay before retry number `attempt` (1-based), or null: don't retry. `status` 0 means the provider could
 * not be reached. Exponential backoff (base × 2^(attempt-1), capped) unless the provider said when.
 */
export function retryDelay(status: number, retryAfter: string | null | undefined, attempt: number, p: RetryPolicy, now = Date.now()): number | null {
  if (attempt > p.maxRetries) return null;
  if (status !== 0 && !retryableStatus(status)) return null;
  const asked = parseRetryAfter(retryAfter, now);
  if (asked !== null) return asked <= p.maxWaitMs ? asked : null;
  return Math.min(p.maxWaitMs, (p.baseMs ?? 500) * 2 ** (attempt - 1));
}
