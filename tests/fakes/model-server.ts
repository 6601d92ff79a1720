/**
 * Scripted OpenAI-compatible model server: the only stand-in for the model provider in the test suite.
 *
 * Real `opencode serve` talks to it through an `@ai-sdk/openai-compatible` provider whose `baseURL` is
 * `server.baseUrl`. It speaks the real wire format: `POST /v1/chat/completions` (SSE `chat.completion.chunk`s
 * when `stream: true`, a `chat.completion` object otherwise), `GET /v1/models`, OpenAI-style JSON errors; and, for
 * the model gateway's other routes, Anthropic `POST /v1/messages` and OpenAI `POST /v1/responses` (text answers,
 * see model-wire.ts).
 *
 * CLI: `npx tsx tests/fakes/model-server.ts --port 4600 --script write-file` serves until killed.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { pathToFileURL } from "node:url";
import { type ModelRequest, parseModelRequest } from "./model-request.ts";
import { wireAnswer, wireError, wireMessages, type WireUsage } from "./model-wire.ts";

export { contentText, type ModelRequest, parseModelRequest } from "./model-request.ts";

export type ModelReply =
  // chunkDelayMs: pause between streamed chunks (a slow provider; lets a test stop a run mid-stream)
  | { text: string; delayMs?: number; chunkDelayMs?: number }
  | { toolCalls: { name: string; arguments: Record<string, unknown> }[]; delayMs?: number; chunkDelayMs?: number }
  | { httpStatus: number; message: string; retryAfter?: string }; // e.g. 401 "Incorrect API key provided"

export type ModelHandler = (req: ModelRequest) => ModelReply | Promise<ModelReply>;

export interface ModelServer {
  baseUrl: string; // "http://127.0.0.1:<port>/v1"
  requests: ModelRequest[]; // every non-title request, in order
  /** OpenCode's session-title requests (answered automatically, never passed to the handler). */
  titleRequests: ModelRequest[];
  /** The key of every request (titles included), in arrival order: must be the provider's real key. */
  keys: string[];
  /** Usage reported in each answer (titles included), in order: what a gateway must sum (input not from cache). */
  usages: WireUsage[];
  /** The exact bytes of the last answers sent (at most 100): what a gateway must pass through unchanged. */
  answers: string[];
  /** Streams the client abandoned before the end (time seen, ms since epoch). */
  aborts: number[];
  setHandler(h: ModelHandler): void;
  close(): Promise<void>;
}

export interface StartModelServerOptions {
  handler?: ModelHandler;
  /** When set, a request whose bearer token differs gets 401 `invalid_api_key`. */
  apiKey?: string;
  /** Default 0 (a free port). */
  port?: number;
  /** Title answered to OpenCode's session-title requests. Default "Scripted session". */
  title?: string;
}

export const MODEL_ID = "m";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function errorTypeFor(status: number): { type: string; code: string | null } {
  if (status === 401) return { type: "invalid_request_error", code: "invalid_api_key" };
  if (status === 403) return { type: "invalid_request_error", code: "forbidden" };
  if (status === 404) return { type: "invalid_request_error", code: "model_not_found" };
  if (status === 429) return { type: "requests", code: "rate_limit_exceeded" };
  if (status >= 500) return { type: "server_error", code: null };
  return { type: "invalid_request_error", code: null };
}

function sendJson(res: http.ServerResponse, status: number, obj: unknown): void {
  const data = JSON.stringify(obj);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(data) });
  res.end(data);
}

function sendError(res: http.ServerResponse, status: number, message: string): void {
  const { type, code } = errorTypeFor(status);
  sendJson(res, status, { error: { message, type, code, param: null } });
}

/** Rough token count so usage numbers are plausible and deterministic. */
function approxTokens(s: string): number {
  return Math.max(1, Math.ceil(s.length / 4));
}

let idCounter = 0;
const nextId = (prefix: string) => `${prefix}${Date.now().toString(36)}${(++idCounter).toString(36)}`;

function splitChunks(s: string, n: number): string[] {
  if (s.length <= n) return [s];
  const out: string[] = [];
  for (let i = 0; i < s.length; i += n) out.push(s.slice(i, i + n));
  return out;
}

export async function startModelServer(opts: StartModelServerOptions = {}): Promise<ModelServer> {
  let handler: ModelHandler = opts.handler ?? scripts.say("OK.");
  const requests: ModelRequest[] = [];
  const titleRequests: ModelRequest[] = [];
  const keys: string[] = [];
  const usages: ModelServer["usages"] = [];
  const answers: string[] = [];
  const keepAnswer = (a: string) => {
    answers.push(a);
    if (answers.length > 100) answers.shift();
  };
  const aborts: number[] = [];
  const title = opts.title ?? "Scripted session";
  const sockets = new Set<import("node:net").Socket>();

  const server = http.createServer((req, res) => {
    void handle(req, res).catch((err) => {
      if (!res.headersSent) sendError(res, 500, `fake model server: ${String(err?.message ?? err)}`);
      else res.destroy();
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });

  async function readBody(req: http.IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://x");
    const path = url.pathname.replace(/\/+$/, "");

    const auth = req.headers.authorization ?? "";
    const xApiKey = typeof req.headers["x-api-key"] === "string" ? req.headers["x-api-key"] : undefined;
    const bearer = /^Bearer (.*)$/.exec(auth)?.[1];
    const apiKey = bearer ?? xApiKey ?? "";
    const apiKeyHeader = bearer !== undefined ? "authorization" : xApiKey !== undefined ? "x-api-key" : "";
    if (req.method === "POST") keys.push(apiKey);
    if (opts.apiKey !== undefined) {
      if (apiKey !== opts.apiKey) {
        await readBody(req);
        return sendError(res, 401, "Incorrect API key provided");
      }
    }
    const wire = (/^(?:\/v1)?\/(messages|responses)$/.exec(path)?.[1] ?? null) as "messages" | "responses" | null;
    if (req.method === "POST" && wire) return wireRoute(wire, req, res, apiKey, apiKeyHeader);

    if (req.method === "GET" && (path === "/v1/models" || path === "/models")) {
      return sendJson(res, 200, {
        object: "list",
        data: [{ id: MODEL_ID, object: "model", created: 1700000000, owned_by: "deckhand-fake" }],
      });
    }
    if (req.method === "GET" && (path === "/v1/models/" + MODEL_ID || path === "/models/" + MODEL_ID)) {
      return sendJson(res, 200, { id: MODEL_ID, object: "model", created: 1700000000, owned_by: "deckhand-fake" });
    }

    if (req.method === "POST" && (path === "/v1/chat/completions" || path === "/chat/completions")) {
      const raw = await readBody(req);
      let body: any;
      try {
        body = JSON.parse(raw);
      } catch {
        return sendError(res, 400, "We could not parse the JSON body of your request.");
      }
      if (!Array.isArray(body?.messages)) return sendError(res, 400, "'messages' is a required property");
      const parsed: ModelRequest = { ...parseModelRequest(body), apiKey, apiKeyHeader };
      let reply: ModelReply;
      if (parsed.isTitleRequest) {
        titleRequests.push(parsed);
        reply = { text: title };
      } else {
        requests.push(parsed);
        reply = await handler(parsed);
      }
      if (!("httpStatus" in reply) && reply.delayMs) await sleep(reply.delayMs);
      if (res.destroyed || req.socket.destroyed) return; // client gave up (session aborted) or server closed
      if ("httpStatus" in reply) {
        if (reply.retryAfter !== undefined) res.setHeader("retry-after", reply.retryAfter);
        return sendError(res, reply.httpStatus, reply.message);
      }
      return body.stream ? streamReply(res, body, parsed, reply) : jsonReply(res, body, parsed, reply);
    }

    return sendError(res, 404, `Unknown route ${req.method} ${url.pathname}`);
  }

  /** Anthropic messages and OpenAI responses: text answers (and scripted errors) in their own wire formats. */
  async function wireRoute(api: "messages" | "responses", req: http.IncomingMessage, res: http.ServerResponse, apiKey: string, apiKeyHeader: ModelRequest["apiKeyHeader"]): Promise<void> {
    const fail = (status: number, message: string) => {
      const body = wireError(api, status, message);
      return body ? sendJson(res, status, body) : sendError(res, status, message);
    };
    let body: any;
    try {
      body = JSON.parse(await readBody(req));
    } catch {
      return fail(400, "We could not parse the JSON body of your request.");
    }
    const messages = wireMessages(api, body);
    if (!messages.length) return fail(400, api === "messages" ? "messages: field required" : "'input' is a required property");
    const parsed: ModelRequest = { ...parseModelRequest({ ...body, messages }), body, apiKey, apiKeyHeader, api };
    requests.push(parsed);
    const reply = await handler(parsed);
    if ("httpStatus" in reply) {
      if (reply.retryAfter !== undefined) res.setHeader("retry-after", reply.retryAfter);
      return fail(reply.httpStatus, reply.message);
    }
    if (!("text" in reply)) return fail(500, `fake model server: tool calls are scripted for chat completions only, not ${api}`);
    if (reply.delayMs) await sleep(reply.delayMs);
    if (res.destroyed || req.socket.destroyed) return;
    const answer = wireAnswer(api, parsed, reply.text, body.stream === true);
    usages.push(answer.usage);
    if (!body.stream) {
      keepAnswer(JSON.stringify(answer.json));
      return sendJson(res, 200, answer.json);
    }
    return writeStream(res, answer.pieces, reply.chunkDelayMs);
  }

  /** SSE pieces, one write each (with a pause between them if asked); an abandoned stream is recorded in `aborts`. */
  async function writeStream(res: http.ServerResponse, pieces: string[], chunkDelayMs?: number): Promise<void> {
    keepAnswer(pieces.join(""));
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive" });
    let gone = false;
    res.on("close", () => {
      if (!res.writableFinished) {
        gone = true;
        aborts.push(Date.now());
      }
    });
    for (const p of pieces) {
      if (gone || res.destroyed) return;
      res.write(p);
      if (chunkDelayMs) await sleep(chunkDelayMs);
    }
    if (!gone) res.end();
  }

  function usageFor(parsed: ModelRequest, reply: Exclude<ModelReply, { httpStatus: number }>) {
    const prompt = approxTokens(JSON.stringify(parsed.messages));
    const completion = "text" in reply ? approxTokens(reply.text) : approxTokens(JSON.stringify(reply.toolCalls));
    const usage: WireUsage = { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
    usages.push(usage);
    return usage;
  }

  function jsonReply(
    res: http.ServerResponse,
    body: any,
    parsed: ModelRequest,
    reply: Exclude<ModelReply, { httpStatus: number }>,
  ): void {
    const message: any = { role: "assistant", content: null };
    let finish = "stop";
    if ("text" in reply) message.content = reply.text;
    else {
      finish = "tool_calls";
      message.tool_calls = reply.toolCalls.map((c) => ({
        id: nextId("call_"),
        type: "function",
        function: { name: c.name, arguments: JSON.stringify(c.arguments ?? {}) },
      }));
    }
    const answer = {
      id: nextId("chatcmpl-"),
      object: "chat.completion",
      created: Math.floor(Date.now() / 1000),
      model: body.model ?? MODEL_ID,
      choices: [{ index: 0, message, finish_reason: finish, logprobs: null }],
      usage: usageFor(parsed, reply),
    };
    keepAnswer(JSON.stringify(answer));
    sendJson(res, 200, answer);
  }

  async function streamReply(
    res: http.ServerResponse,
    body: any,
    parsed: ModelRequest,
    reply: Exclude<ModelReply, { httpStatus: number }>,
  ): Promise<void> {
    const pieces: string[] = [];
    const push = (s: string) => void pieces.push(s);
    await streamPieces(push, body, parsed, reply);
    await writeStream(res, pieces, reply.chunkDelayMs);
  }

  async function streamPieces(
    write: (s: string) => void,
    body: any,
    parsed: ModelRequest,
    reply: Exclude<ModelReply, { httpStatus: number }>,
  ): Promise<void> {
    const res = { write };
    const id = nextId("chatcmpl-");
    const created = Math.floor(Date.now() / 1000);
    const model = body.model ?? MODEL_ID;
    const chunk = (choices: any[], extra: Record<string, unknown> = {}) =>
      res.write(`data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model, choices, ...extra })}\n\n`);

    chunk([{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }]);
    let finish: string;
    if ("text" in reply) {
      for (const piece of splitChunks(reply.text, 16)) chunk([{ index: 0, delta: { content: piece }, finish_reason: null }]);
      finish = "stop";
    } else {
      reply.toolCalls.forEach((c, index) => {
        const args = JSON.stringify(c.arguments ?? {});
        chunk([
          {
            index: 0,
            delta: {
              tool_calls: [{ index, id: nextId("call_"), type: "function", function: { name: c.name, arguments: "" } }],
            },
            finish_reason: null,
          },
        ]);
        for (const piece of splitChunks(args, 32)) {
          chunk([{ index: 0, delta: { tool_calls: [{ index, function: { arguments: piece } }] }, finish_reason: null }]);
        }
      });
      finish = "tool_calls";
    }
    chunk([{ index: 0, delta: {}, finish_reason: finish }]);
    if (body.stream_options?.include_usage) chunk([], { usage: usageFor(parsed, reply) });
    res.write("data: [DONE]\n\n");
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    titleRequests,
    keys,
    usages,
    answers,
    aborts,
    setHandler(h: ModelHandler) {
      handler = h;
    },
    close() {
      return new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      });
    },
  };
}

/** Ready-made scripts used by many tests. */
export const scripts = {
  /**
   * Turn 1: a `write` tool call creating `path` with `content`; once the last message is a tool result:
   * the final text `finalText` (default "Wrote <path>.").
   */
  writeFile(path: string, content: string, finalText?: string): ModelHandler {
    return (req) => {
      if (req.lastRole === "tool") return { text: finalText ?? `Wrote ${path}.` };
      return { toolCalls: [{ name: "write", arguments: { filePath: path, content } }] };
    };
  },
  /** Always answers text. */
  say(text: string): ModelHandler {
    return () => ({ text });
  },
};

/* ------------------------------------------------------------------ CLI */

function parseArgs(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith("--")) {
      const [k, v] = a.slice(2).split("=", 2) as [string, string | undefined];
      if (v !== undefined) out[k] = v;
      else if (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith("--")) out[k] = argv[++i]!;
      else out[k] = "true";
    }
  }
  return out;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.help) {
    console.log(
      "usage: tsx tests/fakes/model-server.ts [--port 4600] [--script write-file|say] [--path hello.txt]\n" +
        "       [--content 'hi\\n'] [--text 'OK.'] [--delay-ms 0] [--api-key KEY]",
    );
    return;
  }
  const script = args.script ?? "write-file";
  let handler: ModelHandler;
  if (script === "write-file") {
    handler = scripts.writeFile(args.path ?? "hello.txt", (args.content ?? "hi\\n").replace(/\\n/g, "\n"), args.text);
  } else if (script === "say") {
    handler = scripts.say(args.text ?? "OK.");
  } else {
    throw new Error(`unknown --script ${script} (write-file | say)`);
  }
  const delayMs = Number(args["delay-ms"] ?? 0);
  const base = handler;
  if (delayMs > 0) {
    handler = async (r) => {
      const reply = await base(r);
      return "httpStatus" in reply ? reply : { ...reply, delayMs };
    };
  }
  const srv = await startModelServer({
    handler,
    port: Number(args.port ?? 4600),
    apiKey: args["api-key"],
  });
  console.log(`fake model server listening on ${srv.baseUrl} (script ${script})`);
  const stop = () => void srv.close().then(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

const isMain = (() => {
  try {
    return process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
  } catch {
    return false;
  }
})();
if (isMain) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
