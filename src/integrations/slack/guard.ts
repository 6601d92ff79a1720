/**
 * What a request to `POST /slack/events` must be before Bolt sees it. Pure: the receiver (receiver.ts) reads the
 * headers and the raw body and asks here.
 *
 * - The request timestamp within five minutes of now, either way (Bolt's own check refuses only old ones).
 * - The body a JSON object (Events API), a form with a `payload` JSON object (interactivity), or a form of fields
 *   (slash commands); an event callback's `event` an object with a string `type` (Bolt and our listeners read it).
 */
import type http from "node:http";
import { z } from "zod";

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

/**
 * Slack's parser: the parts of Slack's payloads that Bolt and our listeners read without checking, in zod. Fields
 * nobody reads pass through (Slack adds fields over time).
 */
const object = z.record(z.string(), z.unknown());
/** Bolt reads the first authorization's team (events) without checking it. */
const authorizations = z.array(object).optional();
const eventCallback = z.looseObject({ type: z.literal("event_callback"), event: z.looseObject({ type: z.string() }), authorizations });
/** url_verification, ssl_check, app_rate_limited...: read by Bolt by their type. */
const otherEventsApi = z.looseObject({ type: z.string().optional(), authorizations });
/** Interactivity types Bolt routes by team (else the user's team_id), and a modal's by its view (Bolt's buildSource). */
const interactivity = z
  .looseObject({ type: z.string().optional(), view: object.optional(), team: z.unknown().optional(), user: object.optional() })
  .refine((p) => !["view_submission", "view_closed"].includes(String(p.type)) || p.view !== undefined, { message: "a modal's payload must have its view", path: ["view"] })
  .refine((p) => (p.team !== undefined && p.team !== null) || p.user !== undefined, { message: "it has neither team nor user" });
/** A slash command's fields (one string each; Slack always sends `text`, a hostile client need not: added empty). */
const slashCommand = z.looseObject({ command: z.string().optional(), text: z.string().optional() });

function problemOf(e: z.ZodError, what: string): Problem {
  const issue = e.issues[0]!;
  const where = issue.path.length ? `${issue.path.join(".")}: ` : what === "request body" ? "" : `${what}: `;
  return { status: 400, error: `${where}${issue.message.replace(/^Invalid input: /, "")}` };
}

function jsonObject(text: string, what: string): { body: Record<string, unknown> } | { problem: Problem } {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { problem: { status: 400, error: `${what} is not valid JSON` } };
  }
  if (!isObject(v)) return { problem: { status: 400, error: `${what} must be a JSON object` } };
  return { body: v };
}

/** The body itself once it fits (not zod's copy: a key like `__proto__` must stay a plain field). */
function checked(schema: z.ZodType, body: Record<string, unknown>, kind: "form" | "json", what: string): Parsed {
  const r = schema.safeParse(body);
  return r.success ? { kind, body } : { problem: problemOf(r.error, what) };
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
      return "problem" in p ? p : checked(interactivity, p.body, "form", "payload");
    }
    // Slash command fields, one value each (the last wins, like Slack never repeating one).
    const body: Record<string, unknown> = {};
    const field = (k: string, v: string) => Object.defineProperty(body, k, { value: v, enumerable: true, writable: true, configurable: true });
    for (const [k, v] of form) field(k, v);
    if (!Object.hasOwn(body, "text")) field("text", "");
    return checked(slashCommand, body, "form", "request body");
  }
  if (type === "application/json" || type === "") {
    const j = jsonObject(text, "the body");
    return "problem" in j ? j : checked(j.body.type === "event_callback" ? eventCallback : otherEventsApi, j.body, "json", "request body");
  }
  return { problem: { status: 415, error: `unsupported content type ${type.slice(0, 80)}: Slack sends application/json or application/x-www-form-urlencoded` } };
}

/** `x-slack-retry-num` / `x-slack-retry-reason`: Slack's retry of a delivery it thinks failed. */
export function retryOf(headers: http.IncomingHttpHeaders): { retryNum?: number; retryReason?: string } {
  const num = [headers["x-slack-retry-num"]].flat()[0];
  const reason = [headers["x-slack-retry-reason"]].flat()[0];
  const n = typeof num === "string" && /^\d{1,6}$/.test(num) ? Number(num) : undefined;
  return { ...(n !== undefined ? { retryNum: n } : {}), ...(typeof reason === "string" && reason ? { retryReason: reason.slice(0, 100) } : {}) };
}
