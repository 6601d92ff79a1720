/**
 * Work that an inbound webhook starts after it has been acknowledged (Slack events, Linear webhooks), run a few at
 * a time with a bounded queue. A burst of mentions then cannot pile hundreds of concurrent handlers onto the
 * database pool (the embedded database is one connection) in front of the queries that acks, relays and pages
 * need, and memory stays bounded. When the queue is full the surface is told to come back later (503: Slack and
 * Linear retry), before anything is stored.
 */
import type { Logger } from "../log/logger.ts";

export interface BoundedWorkOptions {
  /** How many run at once. */
  concurrency: number;
  /** How many may wait; beyond that `push` refuses. */
  maxQueued: number;
  log: Logger;
}

export class BoundedWork {
  private running = 0;
  private readonly queue: (() => Promise<void>)[] = [];
  private readonly waiters: (() => void)[] = [];

  constructor(private readonly o: BoundedWorkOptions) {}

  /** True when a new delivery should be turned away (answer 503 so the surface retries later). */
  full(): boolean {
    return this.queue.length >= this.o.maxQueued;
  }

  get size(): { running: number; queued: number } {
    return { running: this.running, queued: this.queue.length };
  }

  /** Run `fn` when a slot is free; false (and `fn` never runs) when the queue is full. `fn` must not throw. */
  push(fn: () => Promise<void>): boolean {
    if (this.full()) return false;
    this.queue.push(fn);
    this.next();
    return true;
  }

  /** Shutdown: drop what has not started (logged with its count) and wait for what runs. */
  async close(): Promise<void> {
    const dropped = this.queue.splice(0).length;
    if (dropped) this.o.log.warn({ dropped }, "shutting down: inbound work that had not started is dropped");
    await this.idle();
  }

  /** Resolves when nothing runs or waits (tests, shutdown). */
  idle(): Promise<void> {
    if (!this.running && !this.queue.length) return Promise.resolve();
    return new Promise((r) => this.waiters.push(r));
  }

  private next(): void {
    while (this.running < this.o.concurrency && this.queue.length) {
      const fn = this.queue.shift()!;
      this.running++;
      void fn()
        .catch((e) => this.o.log.error({ err: e }, "inbound work failed"))
        .finally(() => {
          this.running--;
          this.next();
          if (!this.running && !this.queue.length) for (const w of this.waiters.splice(0)) w();
        });
    }
  }
}
