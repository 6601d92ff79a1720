/**
 * One live feed (a run's page, or the runs list with one set of filters) and its viewers' server-sent-event
 * connections. A feed wakes on a change (debounced), asks `check()` whether anything it shows changed (a cheap
 * key), renders only then — once, whatever the number of viewers — and writes the same frame to every viewer.
 * Nothing is rendered or sent on a timer; a comment line keeps idle connections open (LiveStreams pings them).
 */
import type { ServerResponse } from "node:http";
import type { Logger } from "../log/logger.ts";
import { recordLiveRefresh } from "../ops/metrics.ts";

/** A viewer that falls this far behind (bytes buffered for a slow socket) is closed; its browser reconnects. */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;
/** A failed refresh is tried again after a growing pause, capped. */
const RETRY_BASE_MS = 500;
const RETRY_CAP_MS = 30_000;

/** One open event stream. */
export class SseConnection {
  closed = false;
  private readonly onClose: (() => void)[] = [];

  constructor(private readonly res: ServerResponse) {
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store", "x-accel-buffering": "no", connection: "keep-alive", "x-content-type-options": "nosniff" });
    res.write("retry: 3000\n\n");
    res.on("close", () => this.close());
  }

  /** A whole frame (`event: ...\ndata: ...\n\n`), the same string for every viewer that gets it. */
  write(frame: string): void {
    if (this.closed) return;
    if (this.res.writableLength > MAX_BUFFERED_BYTES) return this.close();
    this.res.write(frame);
  }

  ping(): void {
    this.write(": ping\n\n");
  }

  whenClosed(fn: () => void): void {
    if (this.closed) fn();
    else this.onClose.push(fn);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const fn of this.onClose.splice(0)) fn();
    this.res.end();
  }
}

export const frame = (event: string, data: unknown): string => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

export interface Viewer {
  conn: SseConnection;
  /** The version this viewer has (null: none yet; it gets a full snapshot). */
  synced: number | null;
}

export type Checked<V> = { gone: true } | { key: string; render: () => Promise<V> };

export interface FeedOptions {
  kind: "run" | "list";
  debounceMs: number;
  log: Logger;
  /** Called when the last viewer left (the hub forgets the feed). */
  onEmpty: () => void;
}

export abstract class Feed<V, W extends Viewer> {
  readonly viewers = new Set<W>();
  /** The last rendered version: its change key and content. */
  protected current: { n: number; key: string; value: V } | null = null;
  private versions = 0;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private failures = 0;
  private disposed = false;
  private lastRefreshAt = 0;

  constructor(protected readonly o: FeedOptions) {}

  /** What the feed shows now: a cheap change key, and how to render it (called only when the key moved). */
  protected abstract check(): Promise<Checked<V>>;
  /** The frame(s) for one viewer: all of `next` when `prev` is null, else only what changed (null: nothing). */
  protected abstract frameFor(viewer: W, prev: V | null, next: V): string | null;
  /** After this version, the stream ends (a finished run). */
  protected ended(_v: V): boolean {
    return false;
  }
  /** Drop viewers that may no longer watch (e.g. a revoked link), before anything is sent. */
  protected admit(_viewer: W): boolean {
    return true;
  }
  /** A timer of the feed's own (e.g. when a heartbeat turns stale); cleared on dispose. */
  protected extraTimer: NodeJS.Timeout | null = null;

  /** A new viewer: it gets the current version at once (rendered first when there is none yet). */
  async join(viewer: W): Promise<void> {
    this.viewers.add(viewer);
    viewer.conn.whenClosed(() => this.leave(viewer));
    if (this.current && !this.running) return this.fanOut(null);
    await this.refresh();
  }

  /**
   * Something may have changed: refresh at once after a quiet spell, else when the debounce window since the last
   * refresh is over (a burst of changes costs one refresh per window).
   */
  schedule(delayMs = Math.max(0, this.lastRefreshAt + this.o.debounceMs - Date.now())): void {
    if (this.timer || this.disposed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.refresh();
    }, delayMs);
  }

  private leave(viewer: W): void {
    this.viewers.delete(viewer);
    if (this.viewers.size === 0) this.dispose();
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.extraTimer) clearTimeout(this.extraTimer);
    for (const v of this.viewers) v.conn.close();
    this.o.onEmpty();
  }

  /** Check, render when changed, send. One at a time; a wake-up during one runs another after it. */
  refresh(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.doRefresh().finally(() => {
      this.running = null;
      if (this.again && !this.disposed) {
        this.again = false;
        this.schedule();
      }
    });
    return this.running;
  }

  private async doRefresh(): Promise<void> {
    if (this.disposed) return;
    this.lastRefreshAt = Date.now();
    let prev: { n: number; key: string; value: V } | null = this.current;
    try {
      const c = await this.check();
      if (this.disposed) return;
      if ("gone" in c) {
        for (const v of this.viewers) {
          v.conn.write(frame("gone", {}));
          v.conn.close();
        }
        return;
      }
      if (this.current && c.key === this.current.key) {
        recordLiveRefresh(this.o.kind, false);
        prev = null; // nothing new: only viewers still without a snapshot get one
      } else {
        const value = await c.render();
        recordLiveRefresh(this.o.kind, true);
        if (this.disposed) return;
        this.current = { n: ++this.versions, key: c.key, value };
      }
      this.failures = 0;
      this.fanOut(prev);
    } catch (err) {
      this.failures++;
      const delay = Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** Math.min(this.failures - 1, 10));
      this.o.log.warn({ err, failures: this.failures, retryInMs: delay }, "live update failed; trying again");
      this.schedule(delay);
    }
  }

  /** Send the current version: what changed since `prev` to viewers that have `prev`, a snapshot to the others. */
  private fanOut(prev: { n: number; value: V } | null): void {
    const cur = this.current;
    if (!cur) return;
    const end = this.ended(cur.value);
    for (const v of [...this.viewers]) {
      if (!this.admit(v)) {
        v.conn.write(frame("gone", {}));
        v.conn.close();
        continue;
      }
      if (v.synced !== cur.n) {
        const f = this.frameFor(v, prev && v.synced === prev.n ? prev.value : null, cur.value);
        if (f) v.conn.write(f);
        v.synced = cur.n;
      }
      if (end) {
        v.conn.write(frame("end", {}));
        v.conn.close();
      }
    }
  }
}
