/**
 * A tiny stand-in for the backend's relay receiver (the 4 endpoints of src/relay/protocol.ts), for relay tests.
 * Stores events by seq idempotently and answers ackedSeq = highest contiguous seq.
 */
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Heartbeat, RelayCommand, RelayEvent } from "../../src/relay/protocol.ts";

export interface FakeBackend {
  url: string;
  runId: string;
  token: string;
  /** Stored events by seq (first copy wins). */
  events: Map<number, RelayEvent>;
  /** When each seq was first received (performance.timeOrigin + performance.now(), ms). */
  receivedAt: Map<number, number>;
  /** Event rows received, duplicates included. */
  received: number;
  /** Seqs received more than once whose copies differ (a reused seq): must stay empty. */
  conflicts: number[];
  heartbeats: (Heartbeat & { receivedAt: number })[];
  commandAcks: number[];
  commands: RelayCommand[];
  /** When set, POST events answers this status (e.g. 500). */
  failEvents: number | undefined;
  /** When true, every endpoint answers 401 (the run is over). */
  runOver: boolean;
  requests: { method: string; path: string; status: number }[];
  addCommand(kind: RelayCommand["kind"], text?: string): number;
  ackedSeq(): number;
  /** Stored events in seq order. */
  ordered(): RelayEvent[];
  ofType(type: string): RelayEvent[];
  waitFor<T>(what: string, fn: () => T | undefined | false | null, timeoutMs?: number): Promise<T>;
  close(): Promise<void>;
}

export const now = () => performance.timeOrigin + performance.now();

export async function startFakeBackend(opts: { runId?: string; token?: string } = {}): Promise<FakeBackend> {
  const runId = opts.runId ?? "run_test";
  const token = opts.token ?? "relay-token-test";
  const waiters = new Set<() => void>();
  const sockets = new Set<Socket>();

  const fb: FakeBackend = {
    url: "",
    runId,
    token,
    events: new Map(),
    receivedAt: new Map(),
    received: 0,
    conflicts: [],
    heartbeats: [],
    commandAcks: [],
    commands: [],
    failEvents: undefined,
    runOver: false,
    requests: [],
    addCommand(kind, text) {
      const seq = fb.commands.length + 1;
      fb.commands.push({ seq, kind, ...(text !== undefined ? { text } : {}) });
      for (const w of [...waiters]) w();
      return seq;
    },
    ackedSeq() {
      let s = 0;
      while (fb.events.has(s + 1)) s++;
      return s;
    },
    ordered() {
      return [...fb.events.values()].sort((a, b) => a.seq - b.seq);
    },
    ofType(type) {
      return fb.ordered().filter((e) => e.type === type);
    },
    async waitFor(what, fn, timeoutMs = 15_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const v = fn();
        if (v) return v as any;
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    close() {
      for (const w of [...waiters]) w();
      return new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      });
    },
  };

  const send = (res: http.ServerResponse, status: number, body: unknown) => {
    const data = JSON.stringify(body);
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(data) });
    res.end(data);
  };

  const server = http.createServer(async (req, res) => {
    const t = now();
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const url = new URL(req.url ?? "/", "http://x");
    const prefix = `/relay/v1/runs/${runId}`;
    const p = url.pathname.startsWith(prefix) ? url.pathname.slice(prefix.length) : null;
    const reply = (status: number, body: unknown) => {
      fb.requests.push({ method: req.method ?? "", path: p ?? url.pathname, status });
      send(res, status, body);
    };
    if (p === null) return reply(404, { error: "not found" });
    if (fb.runOver || req.headers.authorization !== `Bearer ${token}`) return reply(401, { error: "unauthorized" });
    const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString("utf8")) : undefined;

    if (req.method === "POST" && p === "/events") {
      if (fb.failEvents) return reply(fb.failEvents, { error: "injected failure" });
      for (const ev of body.events as RelayEvent[]) {
        fb.received++;
        const had = fb.events.get(ev.seq);
        if (!had) {
          fb.events.set(ev.seq, ev);
          fb.receivedAt.set(ev.seq, t);
        } else if (JSON.stringify(had) !== JSON.stringify(ev)) {
          fb.conflicts.push(ev.seq);
        }
      }
      return reply(200, { ackedSeq: fb.ackedSeq() });
    }
    if (req.method === "POST" && p === "/heartbeat") {
      fb.heartbeats.push({ ...body, receivedAt: t });
      return reply(200, { ok: true });
    }
    if (req.method === "POST" && p === "/commands/ack") {
      fb.commandAcks.push(body.seq);
      return reply(200, { ok: true });
    }
    if (req.method === "GET" && p === "/commands") {
      const after = Number(url.searchParams.get("after") ?? 0);
      const waitMs = Math.min(Number(url.searchParams.get("waitMs") ?? 0), 25_000);
      const pending = () => fb.commands.filter((c) => c.seq > after);
      if (pending().length === 0 && waitMs > 0) {
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            waiters.delete(done);
            resolve();
          };
          const timer = setTimeout(done, waitMs);
          waiters.add(done);
          req.socket.once("close", done);
        });
      }
      if (res.destroyed) return;
      if (fb.runOver) return reply(401, { error: "unauthorized" });
      return reply(200, { commands: pending() });
    }
    return reply(404, { error: "not found" });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  fb.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fb;
}

/** Sorted-sample percentile. */
export function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

/** Asserts-friendly summary: seqs 1..n with no gaps, and how many rows vs distinct seqs. */
export function seqReport(fb: FakeBackend): { max: number; distinct: number; gaps: number[] } {
  const seqs = [...fb.events.keys()].sort((a, b) => a - b);
  const max = seqs.at(-1) ?? 0;
  const gaps: number[] = [];
  for (let s = 1; s <= max; s++) if (!fb.events.has(s)) gaps.push(s);
  return { max, distinct: seqs.length, gaps };
}
