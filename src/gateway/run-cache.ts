/**
 * The gateway's memory of the runs calling it, so that a model call costs no database round trip before it is
 * forwarded (the latency goal of #14):
 * - model token (hashed) → run row, a bounded LRU with a short TTL. Whenever the run changes (RunBus, across
 *   processes) its row is read again at once, and a request that comes meanwhile waits for that read: a stopped
 *   run's token is refused as soon as the stop is known.
 * - each run's usage records are written in order, off the response path; their amounts count towards the run's
 *   spending the moment the response ends (`pending`), so the next budget check of that run sees them without
 *   waiting for the database. Re-reads go through the same per-run queue, so a row never counts a record twice.
 * - the gateway's own change notice after a record is not waited for (the record's UPDATE … RETURNING already gave
 *   the fresh row); its echo from other processes' channel is read again without being waited for, so a foreign
 *   change taken for an echo is still seen within a read, and requests in flight are stopped then (`watch`).
 */
import type { Run } from "../db/schema.ts";
import { LIVE_STATUSES } from "../runs/state-machine.ts";
import { hashToken } from "../runs/tokens.ts";

export interface RunCacheOptions {
  byTokenHash(hash: string): Promise<Run | null>;
  byId(id: string): Promise<Run | null>;
  /** Entries kept (least recently used dropped first; never one with requests in flight). */
  maxEntries?: number;
  /** A row older than this is read again before use (a safety net: changes normally arrive through the bus). */
  ttlMs?: number;
  onError?(err: unknown, runId: string): void;
  now?(): number;
}

export interface Pending {
  micros: number;
  tokens: number;
}

interface Entry {
  hash: string;
  run: Run;
  loadedAt: number;
  /** Changes announced, and the count the last finished read started after: dirty while they differ. */
  changes: number;
  seen: number;
  running: Promise<void> | null;
  runningFrom: number;
  queued: Promise<void> | null;
  /** Bus notices of the gateway's own record still to come back (until `echoUntil`). */
  echoes: number;
  echoUntil: number;
  watchers: Set<() => void>;
}

const ECHO_MS = 1000;

export const isLive = (run: Pick<Run, "status">): boolean => (LIVE_STATUSES as readonly string[]).includes(run.status);

export class RunCache {
  private readonly byHash = new Map<string, Entry>();
  private readonly byRun = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<Run | null>>();
  /** Per run: the tail of its queue of usage records and re-reads. */
  private readonly chains = new Map<string, Promise<void>>();
  private readonly pendingOf = new Map<string, Pending>();
  private muted: string | null = null;
  private readonly maxEntries: number;
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(private readonly opts: RunCacheOptions) {
    this.maxEntries = opts.maxEntries ?? 1000;
    this.ttlMs = opts.ttlMs ?? 5000;
    this.now = opts.now ?? (() => performance.now());
  }

  /** The run behind a model token, current as of every change announced before this call; or null. */
  async lookup(token: string): Promise<Run | null> {
    if (!token || token.length > 200) return null;
    const hash = hashToken(token);
    let e = this.byHash.get(hash);
    if (!e) {
      const run = await this.load(hash);
      if (!run) return null;
      e = this.byHash.get(hash) ?? this.insert(hash, run);
      // A record of this run still being written: read the row again behind it so that it counts once.
      if (this.chains.has(run.id)) e.changes++;
    } else {
      this.byHash.delete(hash); // most recently used goes last
      this.byHash.set(hash, e);
    }
    if (this.now() - e.loadedAt > this.ttlMs) e.changes++;
    const target = e.changes;
    while (e.seen < target && this.byHash.get(hash) === e) await this.fresh(e, target);
    return this.byHash.get(hash) === e ? e.run : null;
  }

  /** Usage written (or being written) but not yet in the cached row. */
  pending(runId: string): Pending {
    return this.pendingOf.get(runId) ?? { micros: 0, tokens: 0 };
  }

  /**
   * Count a request's usage now and write it in the run's queue, after earlier records and reads of the run.
   * `write` returns the run's row as updated. Resolves once written.
   */
  record(runId: string, amount: Pending, write: () => Promise<Run | null>): Promise<void> {
    const p = this.pendingOf.get(runId) ?? { micros: 0, tokens: 0 };
    p.micros += amount.micros;
    p.tokens += amount.tokens;
    this.pendingOf.set(runId, p);
    return this.serial(runId, async () => {
      try {
        const row = await write();
        const e = this.byRun.get(runId);
        if (row && e && row.modelTokenHash === e.hash) {
          e.run = row;
          e.loadedAt = this.now();
          if (!isLive(row)) this.stopWatchers(e);
        }
      } finally {
        p.micros -= amount.micros;
        p.tokens -= amount.tokens;
        if (p.micros === 0 && p.tokens === 0 && this.pendingOf.get(runId) === p) this.pendingOf.delete(runId);
      }
    });
  }

  /** Announce a change the gateway made itself (a usage record whose fresh row it already holds). */
  async ownChange(runId: string, notify: () => Promise<void>): Promise<void> {
    const e = this.byRun.get(runId);
    if (e) {
      e.echoes++;
      e.echoUntil = this.now() + ECHO_MS;
    }
    this.muted = runId; // the bus tells this process's listeners synchronously, inside notify()
    let p: Promise<void>;
    try {
      p = notify();
    } finally {
      this.muted = null;
    }
    await p;
  }

  /** The run changed (bus): read it again at once; requests wait for that read. */
  changed(runId: string): void {
    if (this.muted === runId) return;
    const e = this.byRun.get(runId);
    if (!e) return;
    if (e.echoes > 0 && this.now() < e.echoUntil) {
      e.echoes--; // probably our own record coming back: read again, without making anyone wait
      void this.reload(e).catch(() => {});
      return;
    }
    e.echoes = 0;
    e.changes++;
    void this.fresh(e).catch(() => {});
  }

  /** Call `onStop` (once) when the run is seen stopped or its token replaced. Returns the unsubscribe. */
  watch(run: Run, onStop: () => void): () => void {
    let e = this.byRun.get(run.id);
    if (!e && run.modelTokenHash) e = this.insert(run.modelTokenHash, run);
    if (!e) return () => {};
    let fired = false;
    const fn = () => {
      if (fired) return;
      fired = true;
      e.watchers.delete(fn);
      onStop();
    };
    e.watchers.add(fn);
    if (!isLive(e.run)) fn();
    return () => void e.watchers.delete(fn);
  }

  /** Re-read rows that requests in flight depend on when nothing has made it happen for a while. */
  sweep(): void {
    for (const e of this.byRun.values()) {
      if (e.watchers.size && this.now() - e.loadedAt > this.ttlMs) {
        e.changes++;
        void this.fresh(e).catch(() => {});
      }
    }
  }

  /** Resolves when every queued record and read is done. */
  async idle(): Promise<void> {
    while (this.chains.size) await Promise.all([...this.chains.values()]);
  }

  get size(): number {
    return this.byHash.size;
  }

  private load(hash: string): Promise<Run | null> {
    let p = this.loading.get(hash);
    if (!p) {
      p = this.opts.byTokenHash(hash).finally(() => this.loading.delete(hash));
      this.loading.set(hash, p);
    }
    return p;
  }

  private insert(hash: string, run: Run): Entry {
    const old = this.byRun.get(run.id);
    if (old) this.drop(old); // the run got a new token (a new sandbox): the old one is no longer valid
    const e: Entry = { hash, run, loadedAt: this.now(), changes: 0, seen: 0, running: null, runningFrom: 0, queued: null, echoes: 0, echoUntil: 0, watchers: new Set() };
    this.byHash.set(hash, e);
    this.byRun.set(run.id, e);
    for (const [h, victim] of this.byHash) {
      if (this.byHash.size <= this.maxEntries) break;
      if (victim.watchers.size === 0 && h !== hash) this.drop(victim);
    }
    return e;
  }

  private drop(e: Entry): void {
    if (this.byHash.get(e.hash) === e) this.byHash.delete(e.hash);
    if (this.byRun.get(e.run.id) === e) this.byRun.delete(e.run.id);
    this.stopWatchers(e);
  }

  private stopWatchers(e: Entry): void {
    for (const w of [...e.watchers]) w();
  }

  /** A read that started after every change announced so far (the running one if it did, else the next). */
  private fresh(e: Entry, target = e.changes): Promise<void> {
    if (e.running && e.runningFrom >= target) return e.running;
    return this.reload(e);
  }

  /** Read the row again, in the run's queue; at most one read running and one waiting behind it. */
  private reload(e: Entry): Promise<void> {
    if (e.queued) return e.queued;
    if (e.running) {
      const q = e.running.catch(() => {}).then(() => {
        if (e.queued === q) e.queued = null;
        return this.reload(e);
      });
      e.queued = q;
      return q;
    }
    const runId = e.run.id;
    const from = e.changes;
    e.runningFrom = from;
    const p = this.serial(runId, async () => {
      e.runningFrom = e.changes; // changes announced while waiting in the queue are covered too
      const covers = e.changes;
      const row = await this.opts.byId(runId);
      if (covers > e.seen) e.seen = covers;
      if (!row || row.modelTokenHash !== e.hash) return this.drop(e);
      e.run = row;
      e.loadedAt = this.now();
      if (!isLive(row)) this.stopWatchers(e);
    }).finally(() => {
      if (e.running === p) e.running = null;
      // A change came during the read: read again for the requests in flight (waiting requests do it themselves).
      if (e.changes !== e.seen && e.watchers.size && this.byRun.get(runId) === e) void this.fresh(e).catch(() => {});
    });
    e.running = p;
    return p;
  }

  private serial(runId: string, job: () => Promise<void>): Promise<void> {
    const prev = this.chains.get(runId) ?? Promise.resolve();
    const p = prev.then(job);
    const tail = p.catch((err) => this.opts.onError?.(err, runId));
    this.chains.set(runId, tail);
    void tail.then(() => {
      if (this.chains.get(runId) === tail) this.chains.delete(runId);
    });
    return p;
  }
}
