/** What the scripted model server hands its handlers: a request body read the way tests ask about it. */
import type { WireApi } from "./model-wire.ts";

export interface ModelRequest {
  body: any; // the raw JSON body
  messages: any[]; // body.messages
  toolNames: string[]; // names of offered tools
  isTitleRequest: boolean; // OpenCode's separate session-title request
  userTexts: string[]; // text of every user message, in order (string or content-part arrays flattened)
  lastRole: string; // role of the last message ("user" | "tool" | ...)
  toolResults: { name?: string; toolCallId: string; content: string }[]; // tool messages, in order
  apiKey: string; // the key the request came with ("" when none)
  apiKeyHeader: "authorization" | "x-api-key" | ""; // where: `Authorization: Bearer` or Anthropic's `x-api-key`
  api: WireApi; // chat completions, Anthropic messages or OpenAI responses
}

/** Flattens an OpenAI message `content` (string, or array of content parts) to plain text. */
export function contentText(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content
      .map((p: any) => (typeof p === "string" ? p : typeof p?.text === "string" ? p.text : ""))
      .filter((s: string) => s.length > 0)
      .join("\n");
  }
  return "";
}

/** Turns a raw chat-completions body into the structured request handed to handlers. */
export function parseModelRequest(body: any): ModelRequest {
  const messages: any[] = Array.isArray(body?.messages) ? body.messages : [];
  const tools: any[] = Array.isArray(body?.tools) ? body.tools : [];
  const toolNames = tools.map((t) => t?.function?.name ?? t?.name).filter((n): n is string => typeof n === "string");
  const callNames = new Map<string, string>();
  for (const m of messages) {
    if (m?.role === "assistant" && Array.isArray(m.tool_calls)) {
      for (const c of m.tool_calls) if (c?.id) callNames.set(c.id, c?.function?.name);
    }
  }
  const userTexts = messages.filter((m) => m?.role === "user").map((m) => contentText(m.content));
  const toolResults = messages
    .filter((m) => m?.role === "tool")
    .map((m) => ({
      name: callNames.get(m.tool_call_id) ?? (typeof m.name === "string" ? m.name : undefined),
      toolCallId: String(m.tool_call_id ?? ""),
      content: contentText(m.content),
    }));
  const systemText = messages
    .filter((m) => m?.role === "system")
    .map((m) => contentText(m.content))
    .join("\n");
  // OpenCode's title agent: no tools, system prompt "You are a title generator...", first user message
  // "Generate a title for this conversation:".
  const isTitleRequest =
    toolNames.length === 0 &&
    (/title generator/i.test(systemText) || userTexts.some((t) => /^generate a title\b/i.test(t.trim())));
  return {
    body,
    messages,
    toolNames,
    isTitleRequest,
    userTexts,
    lastRole: String(messages[messages.length - 1]?.role ?? ""),
    toolResults,
    apiKey: "",
    apiKeyHeader: "",
    api: "chat",
  };
}
