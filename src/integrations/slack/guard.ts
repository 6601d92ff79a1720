/**
 * What a request to `POST /slack/events` must be before Bolt sees it. Pure: the receiver (receiver.ts) reads the
 * headers and the raw body and asks here.
 *
 * - The request timestamp within five minutes of now, either way (Bolt's own check refuses only old ones).
 * - The body a JSON object (Events API), a form with a `payload` JSON object (interactivity), or a form of fields
 *   (slash commands); an event callback's `event` an object with a string `type` (Bolt and our listeners read it).
 */
import type http from "node:http";

const MAX_SKEW_SEC = 5 * 60;

export interface Problem {
  status: number;
  error: string;
}

/** A present but unusable or stale `x-slack-request-timestamp` (a missing one is left to the signature check). */
export function timestampProblem(headers: http.IncomingHttpHeaders, nowSec = Math.floor(Date.now() / 1000)): Problem | null {
  const raw = headers["x-slack-request-timestamp"];
  if (raw === undefined) return null;
  const ts = typeof raw === "string" && /^\d{1,12}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isFinite(ts) || Math.abs(nowSec - ts) > MAX_SKEW_SEC) return { status: 401, error: "request timestamp is too far from now (x-slack-request-timestamp)" };
  return null;
}

export type Parsed = { kind: "form" | "json"; body: Record<string, unknown> } | { problem: Problem };

const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === "object" && !Array.isArray(v);

function jsonObject(text: string, what: string): Parsed {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { problem: { status: 400, error: `${what} is not valid JSON` } };
  }
  if (!isObject(v)) return { problem: { status: 400, error: `${what} must be a JSON object` } };
  if (v.type === "event_callback") {
    if (!isObject(v.event)) return { problem: { status: 400, error: "event must be an object" } };
    if (typeof v.event.type !== "string") return { problem: { status: 400, error: "event.type must be a string" } };
  }
  // Bolt reads the first authorization's team (events) without checking it.
  if (v.authorizations !== undefined && (!Array.isArray(v.authorizations) || !v.authorizations.every(isObject))) return { problem: { status: 400, error: "authorizations must be a list of objects" } };
  return { kind: "json", body: v };
}

/** Interactivity types Bolt routes by team (else the user's team_id), and a modal's by its view (Bolt's buildSource). */
const VIEW_TYPES = new Set(["view_submission", "view_closed"]);

function interactivityProblem(p: Record<string, unknown>): Problem | null {
  if (VIEW_TYPES.has(String(p.type)) && !isObject(p.view)) return { status: 400, error: "view must be an object" };
  if ((p.team === undefined || p.team === null) && !isObject(p.user)) return { status: 400, error: "payload has neither team nor user" };
  return null;
}

/** The media type of a Content-Type header, lower case, without parameters. */
export function mediaType(contentType: string | undefined): string {
  return String(contentType ?? "")
    .split(";")[0]!
    .trim()
    .toLowerCase();
}

/** The body Bolt gets: interactivity's `payload` JSON, a slash command's fields, or an Events API JSON object. */
export function parseSlackBody(contentType: string | undefined, text: string): Parsed {
  const type = mediaType(contentType);
  if (type === "application/x-www-form-urlencoded") {
    const form = new URLSearchParams(text);
    const payload = form.get("payload");
    if (payload !== null) {
      const p = jsonObject(payload, "payload");
      if ("problem" in p) return p;
      const problem = interactivityProblem(p.body);
      return problem ? { problem } : { kind: "form", body: p.body };
    }
    // Slash command fields, one value each (the last wins, like Slack never repeating one).
    const body: Record<string, unknown> = {};
    for (const [k, v] of form) Object.defineProperty(body, k, { value: v, enumerable: true, writable: true, configurable: true });
    return { kind: "form", body };
  }
  if (type === "application/json" || type === "") return jsonObject(text, "the body");
  return { problem: { status: 415, error: `unsupported content type ${type.slice(0, 80)}: Slack sends application/json or application/x-www-form-urlencoded` } };
}

/** `x-slack-retry-num` / `x-slack-retry-reason`: Slack's retry of a delivery it thinks failed. */
export function retryOf(headers: http.IncomingHttpHeaders): { retryNum?: number; retryReason?: string } {
  const num = [headers["x-slack-retry-num"]].flat()[0];
  const reason = [headers["x-slack-retry-reason"]].flat()[0];
  const n = typeof num === "string" && /^\d{1,6}$/.test(num) ? Number(num) : undefined;
  return { ...(n !== undefined ? { retryNum: n } : {}), ...(typeof reason === "string" && reason ? { retryReason: reason.slice(0, 100) } : {}) };
}
