/**
 * Forwarding one model request to the provider with the real key, streaming the answer back chunk by chunk as it
 * arrives (a slow reader slows the upstream read: backpressure), tapping usage on the way. Retries 429/5xx only
 * before anything was sent to the agent. The upstream request is aborted when `signal` fires (client gone, run
 * stopped).
 */
import type http from "node:http";
import type { ModelConfig } from "../config/config.ts";
import { retryDelay, type RetryPolicy } from "./retry.ts";
import { UsageTap } from "./usage.ts";

export type Upstream = ModelConfig["upstream"];

export interface ForwardResult {
  status: number;
  tap: UsageTap | null;
  /** Bytes sent to the agent. */
  bytes: number;
  aborted: boolean;
  /** A problem to log (never containing the key). */
  problem?: string;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });

function upstreamHeaders(up: Upstream, client: http.IncomingHttpHeaders): Record<string, string> {
  const h: Record<string, string> = { "content-type": "application/json", accept: String(client.accept ?? "*/*") };
  if (up.kind === "anthropic") {
    h["x-api-key"] = up.apiKey;
    h["anthropic-version"] = typeof client["anthropic-version"] === "string" ? client["anthropic-version"] : "2023-06-01";
    if (typeof client["anthropic-beta"] === "string") h["anthropic-beta"] = client["anthropic-beta"];
  } else {
    h.authorization = `Bearer ${up.apiKey}`;
  }
  return h;
}

/** An error in the provider's own shape, so the agent's SDK reads the message. */
export function providerError(kind: Upstream["kind"], status: number, message: string, code: string): { status: number; body: string } {
  const body =
    kind === "anthropic"
      ? { type: "error", error: { type: status === 401 ? "authentication_error" : status === 402 ? "billing_error" : "api_error", message } }
      : // Not "insufficient_quota": OpenCode reads that as a rate limit and retries; a budget stop must not be retried.
        { error: { message, type: status === 401 ? "invalid_request_error" : status === 402 ? "budget_exceeded" : "server_error", code, param: null } };
  return { status, body: JSON.stringify(body) };
}

const redact = (s: string, key: string) => (key.length >= 4 ? s.split(key).join("***") : s);

async function writeChunk(res: http.ServerResponse, chunk: Uint8Array, signal: AbortSignal): Promise<void> {
  if (res.write(chunk)) return;
  await new Promise<void>((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
    signal.addEventListener("abort", done, { once: true });
  });
}

export async function forward(opts: {
  upstream: Upstream;
  path: string; // e.g. "/chat/completions"
  body: string;
  stream: boolean;
  clientHeaders: http.IncomingHttpHeaders;
  res: http.ServerResponse;
  signal: AbortSignal;
  retry: RetryPolicy;
}): Promise<ForwardResult> {
  const { upstream: up, res, signal } = opts;
  const url = `${up.baseURL}${opts.path}`;
  let lastProblem = "";
  for (let attempt = 1; ; attempt++) {
    let upstreamRes: Response;
    try {
      upstreamRes = await fetch(url, { method: "POST", headers: upstreamHeaders(up, opts.clientHeaders), body: opts.body, signal });
    } catch (e) {
      if (signal.aborted) return { status: 499, tap: null, bytes: 0, aborted: true };
      lastProblem = `The model provider could not be reached (${redact(String((e as Error).cause ?? (e as Error).message), up.apiKey).slice(0, 200)})`;
      const wait = retryDelay(0, null, attempt, opts.retry);
      if (wait !== null) {
        await sleep(wait, signal);
        continue;
      }
      const err = providerError(up.kind, 502, lastProblem, "upstream_unreachable");
      sendOnce(res, err.status, err.body);
      return { status: 502, tap: null, bytes: err.body.length, aborted: false, problem: lastProblem };
    }

    if (upstreamRes.status === 401 || upstreamRes.status === 403) {
      await upstreamRes.body?.cancel().catch(() => {});
      const msg = `The model provider rejected the API key configured on the Deckhand server (${up.keyName}, HTTP ${upstreamRes.status}); an admin must replace it`;
      const err = providerError(up.kind, 401, msg, "invalid_api_key");
      sendOnce(res, err.status, err.body);
      return { status: 401, tap: null, bytes: err.body.length, aborted: false, problem: msg };
    }
    if (!upstreamRes.ok) {
      const wait = retryDelay(upstreamRes.status, upstreamRes.headers.get("retry-after"), attempt, opts.retry);
      if (wait !== null) {
        await upstreamRes.body?.cancel().catch(() => {});
        await sleep(wait, signal);
        if (signal.aborted) return { status: 499, tap: null, bytes: 0, aborted: true };
        continue;
      }
      const text = redact((await upstreamRes.text().catch(() => "")).slice(0, 64 * 1024), up.apiKey);
      res.writeHead(upstreamRes.status, { "content-type": upstreamRes.headers.get("content-type") ?? "application/json" });
      res.end(text);
      return { status: upstreamRes.status, tap: null, bytes: text.length, aborted: false, problem: `provider answered ${upstreamRes.status}: ${text.slice(0, 200)}` };
    }

    // Success: from here on nothing is retried (the agent may already have bytes).
    const ctype = upstreamRes.headers.get("content-type") ?? "application/json";
    const sse = ctype.includes("event-stream");
    const tap = new UsageTap(sse);
    res.writeHead(upstreamRes.status, { "content-type": ctype, "cache-control": "no-cache", "x-accel-buffering": "no" });
    res.flushHeaders();
    let bytes = 0;
    const reader = upstreamRes.body!.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        tap.push(value);
        bytes += value.byteLength;
        await writeChunk(res, value, signal);
        if (signal.aborted || res.destroyed) throw new Error("aborted");
      }
      tap.end();
      res.end();
      return { status: upstreamRes.status, tap, bytes, aborted: false };
    } catch {
      await reader.cancel().catch(() => {});
      tap.end();
      if (!res.destroyed) res.destroy();
      return { status: upstreamRes.status, tap, bytes, aborted: true };
    }
  }
}

function sendOnce(res: http.ServerResponse, status: number, body: string) {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}
