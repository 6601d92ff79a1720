/** Linear SDK errors → what the outbox should do: rate limits and outages are retried (RetryLater), the rest are not. */
import { InternalLinearError, LinearError, NetworkLinearError, RatelimitedLinearError, UnknownLinearError } from "@linear/sdk";
import { RetryLater } from "../../notify/notifier.ts";

export function toRetry(e: unknown): Error {
  if (e instanceof RatelimitedLinearError) {
    const after = e.retryAfter && e.retryAfter > 0 ? e.retryAfter * 1000 : e.requestsResetAt ? Math.max(1000, e.requestsResetAt - Date.now()) : 5000;
    return new RetryLater(`Linear rate limit: ${e.message}`, Math.min(after, 15 * 60_000));
  }
  if (e instanceof InternalLinearError || e instanceof NetworkLinearError || e instanceof UnknownLinearError) return new RetryLater(`Linear unavailable: ${e.message}`);
  if (e instanceof LinearError) {
    if ((e.status ?? 0) >= 500 || e.status === 429) return new RetryLater(`Linear failed (${e.status}): ${e.message}`);
    return e;
  }
  // Fetch failures (connection refused, reset) arrive as plain errors.
  if (e instanceof Error && /fetch failed|ECONNREFUSED|ECONNRESET|ETIMEDOUT|socket|network/i.test(`${e.message} ${String((e as { cause?: unknown }).cause ?? "")}`)) {
    return new RetryLater(`Linear unreachable: ${e.message}`);
  }
  return e instanceof Error ? e : new Error(String(e));
}
