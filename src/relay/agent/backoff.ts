/** Exponential backoff with jitter: 100 ms, 200 ms, 400 ms ... capped at 5 s, each scaled by a random 50-100 %. */
export function backoffDelay(attempt: number, baseMs = 100, capMs = 5_000, random: () => number = Math.random): number {
  const exp = Math.min(capMs, baseMs * 2 ** Math.min(Math.max(attempt, 0), 30));
  return Math.round(exp / 2 + (random() * exp) / 2);
}

export class Backoff {
  private attempt = 0;
  constructor(
    private readonly baseMs = 100,
    private readonly capMs = 5_000,
  ) {}
  next(): number {
    return backoffDelay(this.attempt++, this.baseMs, this.capMs);
  }
  reset(): void {
    this.attempt = 0;
  }
}

/** Sleeps `ms`; resolves early when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
