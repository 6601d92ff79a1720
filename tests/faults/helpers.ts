/**
 * Fault-injection helpers: the server as a child process (so it can be SIGKILLed), a TCP-level proxy that can
 * drop connections after the backend answered (a lost acknowledgement), a round-robin front for several servers,
 * /proc readings, and the event-integrity check every fault case asserts.
 */
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import postgres from "postgres";

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 30_000, everyMs = 100): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? ` (last error: ${(lastErr as Error).message})` : ""}`);
    await sleep(everyMs);
  }
}

/** A gate the scripted model waits on. */
export function gate() {
  let open!: () => void;
  const p = new Promise<void>((r) => (open = r));
  return { p, open };
}

const ROOT = path.resolve(import.meta.dirname, "../..");

export interface ChildServer {
  url: string;
  pid: number;
  proc: ChildProcess;
  logFile: string;
  /** SIGKILL (or another signal) and wait for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  exited: Promise<number | null>;
}

/** `node bin/deckhand.mjs serve` with `env`, waiting until /healthz answers. */
export async function spawnServer(env: Record<string, string>, logFile: string, startTimeoutMs = 60_000): Promise<ChildServer> {
  const out = fs.openSync(logFile, "a");
  const proc = spawn(process.execPath, [path.join(ROOT, "bin/deckhand.mjs"), "serve"], {
    cwd: ROOT,
    env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? "/tmp", ...env },
    stdio: ["ignore", out, out],
  });
  fs.closeSync(out);
  const exited = new Promise<number | null>((r) => proc.on("exit", (code) => r(code)));
  const url = `http://127.0.0.1:${env.PORT}`;
  let dead = false;
  void exited.then(() => (dead = true));
  await until(
    `the server on ${url} (log: ${logFile})`,
    async () => {
      if (dead) throw new Error(`server exited early; log:\n${fs.readFileSync(logFile, "utf8").slice(-3000)}`);
      const r = await fetch(`${url}/healthz`).catch(() => null);
      return r?.ok;
    },
    startTimeoutMs,
    200,
  );
  return {
    url,
    pid: proc.pid!,
    proc,
    logFile,
    exited,
    async kill(signal: NodeJS.Signals = "SIGKILL") {
      if (!dead) proc.kill(signal);
      await exited;
    },
  };
}

/** CPU seconds (user+system) and resident memory of a process, from /proc. */
export function procStats(pid: number): { cpuSeconds: number; rssBytes: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = 100; // USER_HZ on Linux
  const cpuSeconds = (Number(fields[11]) + Number(fields[12])) / ticks;
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { cpuSeconds, rssBytes: rssKb * 1024 };
}

/**
 * An HTTP front for one or several backends: round-robin, skipping backends that refuse connections; with
 * `dropAfterAnswer` it forwards a request, lets the backend answer, and then destroys the client's connection
 * instead of passing the answer on (the relay sees a failure after the backend stored the batch).
 */
export interface Front {
  url: string;
  backends: string[];
  forwarded: { path: string; backend: string }[];
  dropped: string[];
  /** Decide per request whether to drop the answer. */
  dropAfterAnswer: ((req: http.IncomingMessage) => boolean) | null;
  close(): Promise<void>;
}

export async function startFront(backends: string[] = []): Promise<Front> {
  let next = 0;
  const front: Front = {
    url: "",
    backends,
    forwarded: [],
    dropped: [],
    dropAfterAnswer: null,
    close: async () => {},
  };
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const drop = front.dropAfterAnswer?.(req) ?? false;
    for (let tries = 0; tries < Math.max(1, front.backends.length); tries++) {
      const backend = front.backends[next++ % front.backends.length]!;
      try {
        const upstream = await fetch(`${backend}${req.url}`, {
          method: req.method,
          headers: Object.fromEntries(Object.entries(req.headers).filter(([k]) => !["host", "connection", "content-length", "transfer-encoding"].includes(k))) as Record<string, string>,
          body: req.method === "GET" || req.method === "HEAD" ? undefined : body,
          signal: AbortSignal.timeout(40_000),
        });
        const answer = Buffer.from(await upstream.arrayBuffer());
        front.forwarded.push({ path: req.url ?? "", backend });
        if (drop) {
          front.dropped.push(req.url ?? "");
          req.socket.destroy();
          return;
        }
        res.writeHead(upstream.status, { "content-type": upstream.headers.get("content-type") ?? "application/json" });
        res.end(answer);
        return;
      } catch (e) {
        const code = (e as { cause?: { code?: string } }).cause?.code;
        if (code === "ECONNREFUSED" || code === "ECONNRESET" || code === "UND_ERR_SOCKET") continue; // try the next backend
        break;
      }
    }
    if (!res.headersSent) res.writeHead(502).end("no backend answered");
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  front.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  front.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return front;
}

export interface EventIntegrity {
  count: number;
  maxSeq: number;
  lastEventSeq: number;
  gaps: number[];
  types: Record<string, number>;
}

/** Every stored event of a run: seqs must be exactly 1..n (nothing lost) and, by the primary key, stored once. */
export function checkEvents(events: { seq: number; type: string }[], lastEventSeq: number): EventIntegrity {
  const seqs = events.map((e) => e.seq).sort((a, b) => a - b);
  const gaps: number[] = [];
  for (let i = 0; i < seqs.length; i++) if (seqs[i] !== i + 1) gaps.push(i + 1);
  const types: Record<string, number> = {};
  for (const e of events) types[e.type] = (types[e.type] ?? 0) + 1;
  return { count: events.length, maxSeq: seqs.at(-1) ?? 0, lastEventSeq, gaps, types };
}

/** A small Postgres client for reading what the servers stored. */
export function pg(url: string) {
  return postgres(url, { max: 2, onnotice: () => {} });
}
