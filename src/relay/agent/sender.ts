/**
 * The sender loop: outbox → POST events, one request in flight; whatever piled up meanwhile is the next batch.
 * Retries with capped backoff until acknowledged; stops when `signal` aborts or the run is over (401).
 */
import { RunOverError, type BackendClient } from "./backend-client.ts";
import { Backoff, sleep } from "./backoff.ts";
import { errMsg, log } from "./log.ts";
import type { Outbox } from "./outbox.ts";

export async function sendEvents(outbox: Outbox, backend: BackendClient, signal: AbortSignal, onRunOver: (err: RunOverError) => void): Promise<void> {
  const backoff = new Backoff();
  while (!signal.aborted) {
    if (outbox.pendingCount === 0) {
      const more = outbox.compactIfIdle();
      await (more ? Promise.race([outbox.waitForEvents(signal), sleep(1_000, signal)]) : outbox.waitForEvents(signal));
      if (signal.aborted) return;
      if (outbox.pendingCount === 0) continue;
    }
    const batch = outbox.peek();
    try {
      outbox.sync();
      const acked = await backend.postEvents(batch);
      outbox.ack(acked);
      backoff.reset();
      if (acked < batch[batch.length - 1]!.seq) {
        log("warn", "backend acknowledged less than sent", { acked, sentUpTo: batch[batch.length - 1]!.seq });
        await sleep(backoff.next(), signal);
      }
    } catch (err) {
      if (err instanceof RunOverError) return onRunOver(err);
      if (signal.aborted) return;
      const delay = backoff.next();
      log("warn", "sending events failed", { error: errMsg(err), pending: outbox.pendingCount, retryInMs: delay });
      await sleep(delay, signal);
    }
  }
}
