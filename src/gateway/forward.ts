/**
 * Forwarding one model request to the provider with the real key, streaming the answer back chunk by chunk as it
 * arrives (a slow reader slows the upstream read: backpressure), tapping usage on the way. Retries 429/5xx only
 * before anything was sent to the agent. The upstream request is aborted when `signal` fires (client gone, run
 * stopped). Node's own http client with keep-alive agents (no Nagle): a model call costs no new connection, and
 * far less CPU than fetch (bench/gateway.ts).
 */
import http from "node:http";
import https from "node:https";
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

const agentOpts = { keepAlive: true, noDelay: true, maxSockets: 256, maxFreeSockets: 32 };
const agents = { http: new http.Agent(agentOpts), https: new https.Agent(agentOpts) };

/**
 * POST to the provider; resolves with the response head (its body still to be read). A kept-alive connection the
 * provider closed meanwhile is retried at once on a new one (the request never reached it).
 */
function post(url: URL, headers: Record<string, string>, body: string, signal: AbortSignal, fresh = false): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const mod = url.protocol === "https:" ? https : http;
    const req = mod.request(url, {
      method: "POST",
      headers: { ...headers, "content-length": String(Buffer.byteLength(body)) },
      agent: fresh ? false : url.protocol === "https:" ? agents.https : agents.http,
      signal,
    });
    let answered = false;
    req.on("response", (res) => {
      answered = true;
      resolve(res);
    });
    req.on("error", (e: NodeJS.ErrnoException) => {
      if (answered) return; // the response stream reports it
      if (req.reusedSocket && !fresh && !signal.aborted && (e.code === "ECONNRESET" || e.code === "EPIPE")) resolve(post(url, headers, body, signal, true));
      else reject(e);
    });
    req.end(body);
  });
}

/** The body as text, at most `max` characters kept. */
async function readText(res: http.IncomingMessage, max: number): Promise<string> {
  let out = "";
  res.setEncoding("utf8");
  for await (const chunk of res) if (out.length < max) out += chunk as string;
  return out.slice(0, max);
}

const discard = (res: http.IncomingMessage) => {
  res.resume();
  res.on("error", () => {});
};

const header = (res: http.IncomingMessage, name: string): string | null => {
  const v = res.headers[name];
  return v === undefined ? null : Array.isArray(v) ? v.join(", ") : v;
};

const redact = (s: string, key: string) => (key.length >= 4 ? s.split(key).join("***") : s);

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
  const url = new URL(`${up.baseURL}${opts.path}`);
  const headers = upstreamHeaders(up, opts.clientHeaders);
  let lastProblem = "";
  for (let attempt = 1; ; attempt++) {
    let upstreamRes: http.IncomingMessage;
    try {
      upstreamRes = await post(url, headers, opts.body, signal);
    } catch (e) {
      if (signal.aborted) return { status: 499, tap: null, bytes: 0, aborted: true };
      const err = e as NodeJS.ErrnoException;
      lastProblem = `The model provider could not be reached (${redact(err.code ? `${err.code}: ${err.message}` : String(err.message), up.apiKey).slice(0, 200)})`;
      const wait = retryDelay(0, null, attempt, opts.retry);
      if (wait !== null) {
        await sleep(wait, signal);
        continue;
      }
      const out = providerError(up.kind, 502, lastProblem, "upstream_unreachable");
      sendOnce(res, out.status, out.body);
      return { status: 502, tap: null, bytes: out.body.length, aborted: false, problem: lastProblem };
    }
    const status = upstreamRes.statusCode ?? 502;

    if (status === 401 || status === 403) {
      upstreamRes.destroy();
      const msg = `The model provider rejected the API key configured on the Deckhand server (${up.keyName}, HTTP ${status}); an admin must replace it`;
      const err = providerError(up.kind, 401, msg, "invalid_api_key");
      sendOnce(res, err.status, err.body);
      return { status: 401, tap: null, bytes: err.body.length, aborted: false, problem: msg };
    }
    if (status < 200 || status >= 300) {
      const wait = retryDelay(status, header(upstreamRes, "retry-after"), attempt, opts.retry);
      if (wait !== null) {
        discard(upstreamRes);
        await sleep(wait, signal);
        if (signal.aborted) return { status: 499, tap: null, bytes: 0, aborted: true };
        continue;
      }
      const text = redact(await readText(upstreamRes, 64 * 1024).catch(() => ""), up.apiKey);
      res.writeHead(status, { "content-type": header(upstreamRes, "content-type") ?? "application/json" });
      res.end(text);
      return { status, tap: null, bytes: text.length, aborted: false, problem: `provider answered ${status}: ${text.slice(0, 200)}` };
    }

    // Success: from here on nothing is retried (the agent may already have bytes).
    const ctype = header(upstreamRes, "content-type") ?? "application/json";
    const tap = new UsageTap(ctype.includes("event-stream"));
    res.writeHead(status, { "content-type": ctype, "cache-control": "no-cache", "x-accel-buffering": "no" });
    res.flushHeaders();
    const { bytes, complete } = await pump(upstreamRes, res, tap, signal);
    tap.end();
    if (!complete) {
      upstreamRes.destroy();
      if (!res.destroyed) res.destroy();
      return { status, tap, bytes, aborted: true };
    }
    res.end();
    return { status, tap, bytes, aborted: false };
  }
}

/**
 * Copy the provider's answer to the agent chunk by chunk as it arrives, pausing the provider while the agent is
 * slow (backpressure). Resolves with the bytes copied and whether the answer was complete (not cut short by an
 * abort or either side going away).
 */
function pump(from: http.IncomingMessage, to: http.ServerResponse, tap: UsageTap, signal: AbortSignal): Promise<{ bytes: number; complete: boolean }> {
  return new Promise((resolve) => {
    let bytes = 0;
    let settled = false;
    const finish = (complete: boolean) => {
      if (settled) return;
      settled = true;
      from.off("data", onData);
      from.off("end", onEnd);
      from.off("error", onFail);
      from.off("close", onClose);
      to.off("drain", onDrain);
      to.off("close", onFail);
      signal.removeEventListener("abort", onFail);
      resolve({ bytes, complete });
    };
    const onData = (chunk: Buffer) => {
      tap.push(chunk);
      bytes += chunk.byteLength;
      if (!to.write(chunk)) from.pause();
    };
    const onDrain = () => from.resume();
    const onEnd = () => finish(true);
    const onFail = () => finish(false);
    // "close" without "end": the provider's connection broke mid-answer.
    const onClose = () => setImmediate(() => finish(from.complete));
    if (signal.aborted || to.destroyed) return finish(false);
    from.on("data", onData);
    from.on("end", onEnd);
    from.on("error", onFail);
    from.on("close", onClose);
    to.on("drain", onDrain);
    to.on("close", onFail);
    signal.addEventListener("abort", onFail, { once: true });
  });
}

function sendOnce(res: http.ServerResponse, status: number, body: string) {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}
