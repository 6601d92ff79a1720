/**
 * The scripted model server's other two APIs, in their real wire formats (text answers):
 * - Anthropic Messages (`POST /v1/messages`): SSE `message_start` (input and cache tokens), `content_block_*`,
 *   `message_delta` (output tokens), `message_stop`; a `message` object otherwise; errors `{type:"error",error}`.
 * - OpenAI Responses (`POST /v1/responses`): SSE `response.created` … `response.output_text.delta` …
 *   `response.completed` (usage); a `response` object otherwise.
 * Usage is deterministic from the request: input ≈ JSON length / 4, part of it "read from cache".
 */
import type { ModelRequest } from "./model-request.ts";

export type WireApi = "chat" | "messages" | "responses";

/** Usage as the gateway must sum it: input tokens not read from cache, cache reads and writes, output. */
export interface WireUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  cache_read_tokens?: number;
  cache_write_tokens?: number;
}

const approxTokens = (s: string) => Math.max(1, Math.ceil(s.length / 4));
let counter = 0;
const id = (prefix: string) => `${prefix}${Date.now().toString(36)}${(++counter).toString(36)}`;

function split(s: string, n: number): string[] {
  if (s.length <= n) return [s];
  const out: string[] = [];
  for (let i = 0; i < s.length; i += n) out.push(s.slice(i, i + n));
  return out;
}

/** The request body's conversation as chat-like messages, for the handler. */
export function wireMessages(api: WireApi, body: any): any[] {
  if (api === "responses") return typeof body?.input === "string" ? [{ role: "user", content: body.input }] : Array.isArray(body?.input) ? body.input : [];
  return Array.isArray(body?.messages) ? body.messages : [];
}

export function wireError(api: WireApi, status: number, message: string): unknown {
  if (api === "messages") {
    const type = status === 401 ? "authentication_error" : status === 429 ? "rate_limit_error" : status === 404 ? "not_found_error" : status >= 500 ? "api_error" : "invalid_request_error";
    return { type: "error", error: { type, message } };
  }
  return null; // OpenAI shape: the caller's own
}

/** The answer to a Messages or Responses request: SSE pieces when streaming, else one JSON body. */
export function wireAnswer(api: "messages" | "responses", req: ModelRequest, text: string, stream: boolean): { usage: WireUsage; pieces: string[]; json: unknown } {
  const all = approxTokens(JSON.stringify(req.messages));
  const cacheRead = Math.floor(all / 2);
  const input = all - cacheRead;
  const output = approxTokens(text);
  const model = req.body?.model ?? "m";
  return api === "messages" ? anthropic(model, text, stream, input, cacheRead, output) : responses(model, text, stream, input, cacheRead, output);
}

function anthropic(model: string, text: string, stream: boolean, input: number, cacheRead: number, output: number) {
  const cacheWrite = 3;
  const usage: WireUsage = { prompt_tokens: input, completion_tokens: output, total_tokens: input + cacheRead + cacheWrite + output, cache_read_tokens: cacheRead, cache_write_tokens: cacheWrite };
  const msgId = id("msg_");
  const startUsage = { input_tokens: input, cache_creation_input_tokens: cacheWrite, cache_read_input_tokens: cacheRead, output_tokens: 1 };
  const message = { id: msgId, type: "message", role: "assistant", model, content: [] as unknown[], stop_reason: null as string | null, stop_sequence: null };
  if (!stream) {
    return { usage, pieces: [], json: { ...message, content: [{ type: "text", text }], stop_reason: "end_turn", usage: { ...startUsage, output_tokens: output } } };
  }
  const ev = (type: string, data: Record<string, unknown>) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
  const pieces = [
    ev("message_start", { message: { ...message, usage: startUsage } }),
    ev("content_block_start", { index: 0, content_block: { type: "text", text: "" } }),
    ev("ping", {}),
    ...split(text, 16).map((t) => ev("content_block_delta", { index: 0, delta: { type: "text_delta", text: t } })),
    ev("content_block_stop", { index: 0 }),
    ev("message_delta", { delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { output_tokens: output } }),
    ev("message_stop", {}),
  ];
  return { usage, pieces, json: null };
}

function responses(model: string, text: string, stream: boolean, input: number, cacheRead: number, output: number) {
  const usage: WireUsage = { prompt_tokens: input, completion_tokens: output, total_tokens: input + cacheRead + output, cache_read_tokens: cacheRead, cache_write_tokens: 0 };
  const respId = id("resp_");
  const itemId = id("msg_");
  const created = Math.floor(Date.now() / 1000);
  const item = (status: string, content: unknown[]) => ({ id: itemId, type: "message", status, role: "assistant", content });
  const part = (t: string) => ({ type: "output_text", text: t, annotations: [] });
  const response = (status: string, out: unknown[], u: unknown) => ({ id: respId, object: "response", created_at: created, status, model, output: out, usage: u });
  const wireUsage = { input_tokens: input + cacheRead, input_tokens_details: { cached_tokens: cacheRead }, output_tokens: output, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: input + cacheRead + output };
  const done = response("completed", [item("completed", [part(text)])], wireUsage);
  if (!stream) return { usage, pieces: [], json: done };
  let seq = 0;
  const ev = (type: string, data: Record<string, unknown>) => `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: seq++, ...data })}\n\n`;
  const at = { item_id: itemId, output_index: 0, content_index: 0 };
  const pieces = [
    ev("response.created", { response: response("in_progress", [], null) }),
    ev("response.in_progress", { response: response("in_progress", [], null) }),
    ev("response.output_item.added", { output_index: 0, item: item("in_progress", []) }),
    ev("response.content_part.added", { ...at, part: part("") }),
    ...split(text, 16).map((t) => ev("response.output_text.delta", { ...at, delta: t })),
    ev("response.output_text.done", { ...at, text }),
    ev("response.content_part.done", { ...at, part: part(text) }),
    ev("response.output_item.done", { output_index: 0, item: item("completed", [part(text)]) }),
    ev("response.completed", { response: done }),
  ];
  return { usage, pieces, json: null };
}
