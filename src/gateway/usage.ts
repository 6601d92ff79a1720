/**
 * Reading token usage from what the provider sends, without holding anything back: the tap sees each chunk as it
 * is forwarded. Understands OpenAI chat completions (final chunk `usage`, with `stream_options.include_usage`),
 * OpenAI Responses (`response.completed`), Anthropic messages (`message_start` + `message_delta`), and plain JSON
 * answers of all three. Pure (no I/O).
 */
import type { TokenUsage } from "./prices.ts";

const MAX_LINE = 4 * 1024 * 1024;
const MAX_JSON = 64 * 1024 * 1024;

const num = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) && v >= 0 ? Math.floor(v) : 0);

export const emptyUsage = (): TokenUsage => ({ input: 0, output: 0, cacheRead: 0, cacheWrite: 0 });

/** Fold one provider object (a stream event or a whole answer) into `u`. Returns true if it carried usage. */
export function foldUsage(u: TokenUsage, obj: any): boolean {
  if (!obj || typeof obj !== "object") return false;
  // Anthropic stream: message_start carries input (and cache) tokens, message_delta the running output count.
  if (obj.type === "message_start" && obj.message?.usage) return foldAnthropic(u, obj.message.usage);
  if (obj.type === "message_delta" && obj.usage) return foldAnthropic(u, obj.usage);
  // OpenAI Responses stream.
  if (typeof obj.type === "string" && obj.type.startsWith("response.") && obj.response?.usage) return foldResponses(u, obj.response.usage);
  const usage = obj.usage;
  if (!usage || typeof usage !== "object") return false;
  if ("prompt_tokens" in usage || "completion_tokens" in usage) {
    const cached = num(usage.prompt_tokens_details?.cached_tokens);
    u.input = Math.max(0, num(usage.prompt_tokens) - cached);
    u.cacheRead = cached;
    u.output = num(usage.completion_tokens);
    return true;
  }
  if ("cache_creation_input_tokens" in usage || obj.type === "message") return foldAnthropic(u, usage);
  if ("input_tokens" in usage) return foldResponses(u, usage);
  return false;
}

function foldAnthropic(u: TokenUsage, usage: any): boolean {
  if ("input_tokens" in usage) u.input = num(usage.input_tokens);
  if ("cache_read_input_tokens" in usage) u.cacheRead = num(usage.cache_read_input_tokens);
  if ("cache_creation_input_tokens" in usage) u.cacheWrite = num(usage.cache_creation_input_tokens);
  if ("output_tokens" in usage) u.output = Math.max(u.output, num(usage.output_tokens));
  return true;
}

function foldResponses(u: TokenUsage, usage: any): boolean {
  const cached = num(usage.input_tokens_details?.cached_tokens);
  u.input = Math.max(0, num(usage.input_tokens) - cached);
  u.cacheRead = cached;
  u.output = num(usage.output_tokens);
  return true;
}

/** Watches a forwarded response (SSE or JSON) and keeps the usage it reports. */
export class UsageTap {
  readonly usage = emptyUsage();
  seen = false;
  private buf = "";
  private json: string[] = [];
  private jsonBytes = 0;
  private readonly decoder = new TextDecoder();

  constructor(private readonly sse: boolean) {}

  push(chunk: Uint8Array): void {
    const text = this.decoder.decode(chunk, { stream: true });
    if (!this.sse) {
      if (this.jsonBytes + text.length <= MAX_JSON) this.json.push(text);
      this.jsonBytes += text.length;
      return;
    }
    this.buf += text;
    let nl: number;
    while ((nl = this.buf.indexOf("\n")) >= 0) {
      this.line(this.buf.slice(0, nl));
      this.buf = this.buf.slice(nl + 1);
    }
    if (this.buf.length > MAX_LINE) this.buf = ""; // an absurd line: skip it rather than grow without bound
  }

  end(): TokenUsage {
    if (this.sse) {
      if (this.buf) this.line(this.buf);
      this.buf = "";
    } else if (this.jsonBytes <= MAX_JSON) {
      try {
        this.seen = foldUsage(this.usage, JSON.parse(this.json.join(""))) || this.seen;
      } catch {
        /* not JSON: no usage */
      }
      this.json = [];
    }
    return this.usage;
  }

  private line(line: string): void {
    if (!line.startsWith("data:") || !line.includes("usage")) return;
    const data = line.slice(5).trim();
    try {
      this.seen = foldUsage(this.usage, JSON.parse(data)) || this.seen;
    } catch {
      /* a partial or foreign line */
    }
  }
}
