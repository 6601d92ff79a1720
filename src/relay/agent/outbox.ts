/**
 * The on-disk outbox: every event is written here (and gets its sequence number) BEFORE it is sent.
 *
 * File `outbox.jsonl`: a header line `{"ackedSeq":N}` followed by one RelayEvent per line, append-only.
 * Acknowledged events are dropped from memory at once and from the file by compaction: the file is rewritten
 * (header with the new ackedSeq + the unacknowledged events) to a temp file, fsync'd and renamed over.
 * A header's ackedSeq may lag behind the receiver's (we compact lazily): after a restart some acknowledged
 * events are sent again, which the receiver ignores (it stores each seq once).
 *
 * Recovery: the next seq is max(header ackedSeq, highest seq in the file) + 1, so a seq is never reused; a torn
 * last line (crash in the middle of a write) is dropped — it was never sent, since sending follows the write.
 */
import fs from "node:fs";
import path from "node:path";
import type { RelayEvent } from "../protocol.ts";
import { log } from "./log.ts";

export interface OutboxOptions {
  /** Compact once this many acknowledged events are still in the file. Default 200. */
  compactAfter?: number;
  /** When everything is acknowledged, compact at most this often (ms), see compactIfIdle(). Default 1000. */
  idleCompactMs?: number;
}

interface Pending {
  ev: RelayEvent;
  bytes: number;
}

export const MAX_BATCH_EVENTS = 500;
export const MAX_BATCH_BYTES = 4 * 1024 * 1024;

export class Outbox {
  readonly file: string;
  private fd: number;
  private pending: Pending[] = [];
  private ackedSeqValue: number;
  private lastSeqValue: number;
  private dirty = false;
  private ackedInFile = 0;
  private readonly compactAfter: number;
  private readonly idleCompactMs: number;
  private lastCompactAt = 0;
  private waiters: (() => void)[] = [];

  private constructor(file: string, ackedSeq: number, pending: Pending[], opts: OutboxOptions) {
    this.file = file;
    this.ackedSeqValue = ackedSeq;
    this.pending = pending;
    this.lastSeqValue = Math.max(ackedSeq, pending.at(-1)?.ev.seq ?? 0);
    this.compactAfter = opts.compactAfter ?? 200;
    this.idleCompactMs = opts.idleCompactMs ?? 1_000;
    this.fd = -1;
    this.rewrite(); // start from a clean file (drops a torn tail and already-acked lines)
  }

  /** Opens (or creates) the outbox in `dir`, recovering what a previous relay process left. */
  static open(dir: string, opts: OutboxOptions = {}): Outbox {
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, "outbox.jsonl");
    const { ackedSeq, events } = parseOutbox(fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "");
    const pending = events.map((ev) => ({ ev, bytes: Buffer.byteLength(JSON.stringify(ev)) }));
    return new Outbox(file, ackedSeq, pending, opts);
  }

  get lastSeq(): number {
    return this.lastSeqValue;
  }
  get ackedSeq(): number {
    return this.ackedSeqValue;
  }
  get pendingCount(): number {
    return this.pending.length;
  }

  /** Assigns the next seq, writes the event to the file (fsync comes in batches, see sync()) and returns it. */
  append(type: string, data: Record<string, unknown>, at: Date = new Date()): RelayEvent {
    if (this.fd < 0) throw new Error("outbox is closed");
    const ev: RelayEvent = { seq: this.lastSeqValue + 1, type, at: at.toISOString(), data };
    const line = JSON.stringify(ev);
    fs.writeSync(this.fd, line + "\n");
    this.lastSeqValue = ev.seq;
    this.pending.push({ ev, bytes: Buffer.byteLength(line) });
    this.dirty = true;
    const w = this.waiters;
    this.waiters = [];
    for (const wake of w) wake();
    return ev;
  }

  /** The oldest unacknowledged events, at most `maxEvents` and about `maxBytes` (at least one event). */
  peek(maxEvents = MAX_BATCH_EVENTS, maxBytes = MAX_BATCH_BYTES): RelayEvent[] {
    const out: RelayEvent[] = [];
    let bytes = 0;
    for (const p of this.pending) {
      if (out.length >= maxEvents || (out.length > 0 && bytes + p.bytes > maxBytes)) break;
      out.push(p.ev);
      bytes += p.bytes;
    }
    return out;
  }

  /** Makes every appended event durable. Called once per batch, before sending it. */
  sync(): void {
    if (!this.dirty || this.fd < 0) return;
    fs.fdatasyncSync(this.fd);
    this.dirty = false;
  }

  /** The receiver stored every event up to `seq`: drop them; compact the file now and then. */
  ack(seq: number): void {
    if (this.fd < 0 || seq <= this.ackedSeqValue) return;
    if (seq > this.lastSeqValue) {
      log("warn", "ack beyond the last written seq", { ackedSeq: seq, lastSeq: this.lastSeqValue });
      seq = this.lastSeqValue;
    }
    let n = 0;
    while (n < this.pending.length && this.pending[n]!.ev.seq <= seq) n++;
    this.pending.splice(0, n);
    this.ackedInFile += n;
    this.ackedSeqValue = seq;
    if (this.ackedInFile >= this.compactAfter) this.compact();
  }

  /** Rewrites the file with only the unacknowledged events. */
  compact(): void {
    this.rewrite();
  }

  /**
   * When all is acknowledged and some acknowledged events are still in the file, compacts (at most once per
   * `idleCompactMs`): keeps what a crashed relay resends small without rewriting the file on every ack.
   * Returns true when there is more to do later.
   */
  compactIfIdle(): boolean {
    if (this.fd < 0 || this.pending.length > 0 || this.ackedInFile === 0) return false;
    if (Date.now() - this.lastCompactAt < this.idleCompactMs) return true;
    this.rewrite();
    return false;
  }

  /** Resolves when an event is appended (at once if some are pending). */
  waitForEvents(signal?: AbortSignal): Promise<void> {
    if (this.pending.length > 0 || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        signal?.removeEventListener("abort", wake);
        resolve();
      };
      this.waiters.push(wake);
      signal?.addEventListener("abort", wake, { once: true });
    });
  }

  close(): void {
    if (this.fd < 0) return;
    try {
      if (this.ackedInFile > 0) this.rewrite();
      this.sync();
    } finally {
      fs.closeSync(this.fd);
      this.fd = -1;
    }
  }

  private rewrite(): void {
    const tmp = this.file + ".tmp";
    const body =
      JSON.stringify({ ackedSeq: this.ackedSeqValue }) +
      "\n" +
      this.pending.map((p) => JSON.stringify(p.ev) + "\n").join("");
    const tfd = fs.openSync(tmp, "w");
    try {
      fs.writeSync(tfd, body);
      fs.fsyncSync(tfd);
    } finally {
      fs.closeSync(tfd);
    }
    if (this.fd >= 0) fs.closeSync(this.fd);
    fs.renameSync(tmp, this.file);
    fsyncDir(path.dirname(this.file));
    this.fd = fs.openSync(this.file, "a");
    this.lastCompactAt = Date.now();
    this.ackedInFile = 0;
    this.dirty = false;
  }
}

/** Parses an outbox file: header ackedSeq and the events after it, in seq order, without acked or duplicate ones. */
export function parseOutbox(text: string): { ackedSeq: number; events: RelayEvent[] } {
  let ackedSeq = 0;
  const bySeq = new Map<number, RelayEvent>();
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line.trim()) continue;
    let obj: any;
    try {
      obj = JSON.parse(line);
    } catch {
      // Only the last line can be torn (append-only file); anything else is logged and skipped.
      if (i < lines.length - 1 && lines.slice(i + 1).some((l) => l.trim())) log("warn", "corrupt outbox line skipped", { line: i + 1 });
      continue;
    }
    if (typeof obj?.seq === "number" && typeof obj?.type === "string") {
      if (!bySeq.has(obj.seq)) bySeq.set(obj.seq, obj as RelayEvent);
    } else if (typeof obj?.ackedSeq === "number") {
      ackedSeq = Math.max(ackedSeq, obj.ackedSeq);
    }
  }
  const events = [...bySeq.values()].filter((e) => e.seq > ackedSeq).sort((a, b) => a.seq - b.seq);
  return { ackedSeq, events };
}

function fsyncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, "r");
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    /* some filesystems refuse fsync on directories */
  }
}
