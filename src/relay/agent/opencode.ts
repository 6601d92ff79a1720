/**
 * Talking to the local `opencode serve`: a small fetch client (HTTP Basic, the project directory on every
 * request, a short timeout on every request: an early request can hang forever), the `/event` SSE stream, and
 * checks on the OpenCode process (pid file, liveness, "listening" line in its log).
 *
 * Plain fetch instead of the SDK's client keeps the bundle small; the SDK's types document the shapes.
 */
import fs from "node:fs";
import type { Session, SessionStatus } from "@opencode-ai/sdk/v2";
import type { OpencodeEvent } from "./events.ts";
import { SseParser } from "./sse.ts";

export class OpencodeHttpError extends Error {
  constructor(
    readonly status: number,
    what: string,
    detail: string,
  ) {
    super(`opencode answered ${status} to ${what}${detail ? `: ${detail.slice(0, 200)}` : ""}`);
  }
}

export interface OpencodeClientOptions {
  baseUrl: string;
  password: string;
  directory: string;
  username?: string;
}

/** How long the event stream may stay silent (OpenCode sends `server.heartbeat` every 10 s) before we reconnect. */
export const EVENT_STREAM_IDLE_MS = 30_000;

export class OpencodeClient {
  private readonly headers: Record<string, string>;

  constructor(private readonly opts: OpencodeClientOptions) {
    const user = opts.username ?? "opencode";
    this.headers = {
      authorization: `Basic ${Buffer.from(`${user}:${opts.password}`).toString("base64")}`,
      "x-opencode-directory": encodeURIComponent(opts.directory),
    };
  }

  /** `GET /global/health`: true when it answers 200 within `timeoutMs`. */
  async healthy(timeoutMs = 2_000): Promise<boolean> {
    try {
      const res = await fetch(this.url("/global/health"), { headers: this.headers, signal: AbortSignal.timeout(timeoutMs) });
      await res.body?.cancel();
      return res.ok;
    } catch {
      return false;
    }
  }

  async createSession(): Promise<Session> {
    return (await this.request("POST", "/session", {}, 10_000)) as Session;
  }

  /** Does the session still exist (for reusing the one saved in state.json)? */
  async sessionExists(sessionId: string): Promise<boolean> {
    try {
      await this.request("GET", `/session/${encodeURIComponent(sessionId)}`, undefined, 5_000);
      return true;
    } catch (err) {
      if (err instanceof OpencodeHttpError && (err.status === 404 || err.status === 400)) return false;
      throw err;
    }
  }

  /** `POST /session/{id}/prompt_async` (204 at once; queued by OpenCode while the session is busy). */
  async promptAsync(sessionId: string, text: string): Promise<void> {
    await this.request("POST", `/session/${encodeURIComponent(sessionId)}/prompt_async`, { parts: [{ type: "text", text }] }, 10_000);
  }

  async abort(sessionId: string): Promise<void> {
    await this.request("POST", `/session/${encodeURIComponent(sessionId)}/abort`, undefined, 10_000);
  }

  /** `GET /session/status`: status by session id (`{}` when all are idle). */
  async status(): Promise<Record<string, SessionStatus>> {
    return (await this.request("GET", "/session/status", undefined, 5_000)) as Record<string, SessionStatus>;
  }

  async replyPermission(requestId: string, reply: "once" | "always" | "reject"): Promise<void> {
    await this.request("POST", `/permission/${encodeURIComponent(requestId)}/reply`, { reply }, 10_000);
  }

  async replyQuestion(requestId: string, answers: string[][]): Promise<void> {
    await this.request("POST", `/question/${encodeURIComponent(requestId)}/reply`, { answers }, 10_000);
  }

  async rejectQuestion(requestId: string): Promise<void> {
    await this.request("POST", `/question/${encodeURIComponent(requestId)}/reject`, undefined, 10_000);
  }

  /**
   * One connection to `GET /event`: yields events until the stream ends, stays silent for `idleMs`, or `signal`
   * aborts. Throws when it cannot connect. The caller reconnects.
   */
  async *events(signal: AbortSignal, idleMs = EVENT_STREAM_IDLE_MS): AsyncGenerator<OpencodeEvent> {
    const conn = new AbortController();
    const onAbort = () => conn.abort();
    signal.addEventListener("abort", onAbort, { once: true });
    let timer = setTimeout(() => conn.abort(), 10_000); // connect (headers) timeout
    const resetTimer = () => {
      clearTimeout(timer);
      timer = setTimeout(() => conn.abort(), idleMs);
    };
    try {
      const res = await fetch(this.url("/event"), {
        headers: { ...this.headers, accept: "text/event-stream" },
        signal: conn.signal,
      });
      if (!res.ok || !res.body) {
        const detail = await res.text().catch(() => "");
        throw new OpencodeHttpError(res.status, "GET /event", detail);
      }
      resetTimer();
      const parser = new SseParser();
      const decoder = new TextDecoder();
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          resetTimer();
          for (const data of parser.push(decoder.decode(chunk, { stream: true }))) {
            let ev: OpencodeEvent;
            try {
              ev = JSON.parse(data);
            } catch {
              continue;
            }
            if (ev && typeof ev.type === "string") yield ev;
          }
        }
      } catch (err) {
        if (!conn.signal.aborted) throw err; // an abort (ours or idle) just ends this connection
      }
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      conn.abort();
    }
  }

  private url(path: string): string {
    const sep = path.includes("?") ? "&" : "?";
    return `${this.opts.baseUrl}${path}${sep}directory=${encodeURIComponent(this.opts.directory)}`;
  }

  private async request(method: string, path: string, body: unknown, timeoutMs: number): Promise<unknown> {
    const what = `${method} ${path}`;
    const res = await fetch(this.url(path), {
      method,
      headers: { ...this.headers, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    if (!res.ok) throw new OpencodeHttpError(res.status, what, text);
    if (!text) return undefined;
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
}

/* ------------------------------------------------------------------ the OpenCode process */

/** The pid in the pid file, or undefined while it is missing or empty. */
export function readPid(file: string): number | undefined {
  try {
    const pid = Number.parseInt(fs.readFileSync(file, "utf8").trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Is the process alive? `kill(pid, 0)` succeeds for zombies too, so /proc's state is checked as well. */
export function pidAlive(pid: number): { alive: boolean; reason?: string } {
  try {
    process.kill(pid, 0);
  } catch (err: any) {
    if (err?.code === "EPERM") return { alive: true }; // exists, not ours to signal
    return { alive: false, reason: `process ${pid} is gone` };
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    if (state === "Z" || state === "X") return { alive: false, reason: `process ${pid} exited (zombie)` };
  } catch {
    /* no /proc: trust kill(0) */
  }
  return { alive: true };
}

/** Has OpenCode written its "listening" line to the log? */
export function logSaysListening(file: string): boolean {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, "r");
    const buf = Buffer.alloc(256 * 1024); // the line comes early; the log can grow large later
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    return buf.subarray(0, n).toString("utf8").includes("opencode server listening");
  } catch {
    return false;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Size of the log file (growth counts as activity). */
export function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}
