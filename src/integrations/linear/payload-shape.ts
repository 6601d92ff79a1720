/**
 * Linear's parser: the shape of a signed webhook, checked (zod) before anything reads it. A signature proves who
 * sent it, not that its fields have the types the handlers read. Fields Deckhand does not read pass through
 * unchecked (Linear adds fields over time). Pure: a plain-words problem (answered 400, nothing stored) or null.
 */
import { z } from "zod";

/** A JSON object (not an array, not null). */
const object = z.record(z.string(), z.unknown());

const agentSessionEvent = z.looseObject({
  type: z.literal("AgentSessionEvent"),
  action: z.string(),
  agentSession: z.looseObject({
    id: z.string().min(1),
    issue: object.nullish(),
    comment: object.nullish(),
    creator: object.nullish(),
  }),
  agentActivity: object.nullish(),
});

/** Issue and Comment events: handlers read `data`. */
const dataEvent = z.looseObject({ type: z.enum(["Issue", "Comment"]), data: object });

/** Anything else Linear sends (OAuthApp, AppUserNotification...): a type, the rest read by its own handler. */
const otherEvent = z.looseObject({ type: z.string() });

function schemaFor(type: unknown) {
  if (type === "AgentSessionEvent") return agentSessionEvent;
  if (type === "Issue" || type === "Comment") return dataEvent;
  return otherEvent;
}

export function linearPayloadProblem(payload: unknown): string | null {
  if (!object.safeParse(payload).success) return "the webhook body must be a JSON object";
  const r = schemaFor((payload as { type?: unknown }).type).safeParse(payload);
  if (r.success) return null;
  const issue = r.error.issues[0]!;
  const where = issue.path.length ? issue.path.join(".") : "the webhook";
  return `${where}: ${issue.message.replace(/^Invalid input: /, "")}`;
}
