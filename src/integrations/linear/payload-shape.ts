/**
 * The shape of a signed Linear webhook, checked before anything reads it: a signature proves who sent it, not that
 * its fields have the types the handlers read. Pure: a plain-words problem (answered 400, nothing stored) or null.
 */
const isObject = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === "object" && !Array.isArray(x);

export function linearPayloadProblem(payload: unknown): string | null {
  if (!isObject(payload)) return "the webhook body must be a JSON object";
  if (typeof payload.type !== "string") return "the webhook has no type";
  if (payload.type === "AgentSessionEvent") {
    const s = payload.agentSession;
    if (!isObject(s)) return "agentSession must be an object";
    if (typeof s.id !== "string" || !s.id) return "agentSession.id must be a string";
    if (typeof payload.action !== "string") return "action must be a string";
    for (const k of ["issue", "comment", "creator"] as const) if (s[k] != null && !isObject(s[k])) return `agentSession.${k} must be an object`;
    if (payload.agentActivity != null && !isObject(payload.agentActivity)) return "agentActivity must be an object";
  }
  if ((payload.type === "Issue" || payload.type === "Comment") && !isObject(payload.data)) return "data must be an object";
  return null;
}
