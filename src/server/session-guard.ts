/** An onRequest hook for a plugin's routes that a signed-in dashboard session must open (Linear's install, ...). */
import type { FastifyReply, FastifyRequest } from "fastify";
import type { SessionStore } from "../web/session-store.ts";

/** Anyone without a session is sent to the sign-in page, and comes back to `path` (a fixed path, never the URL as spelled). */
export function requireSession(sessions: SessionStore, path: string) {
  return async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | void> => {
    const s = await sessions.fromCookieHeader(req.headers.cookie).catch(() => undefined);
    if (s === undefined) return reply.code(503).send({ error: "sessions unavailable" });
    if (!s) return reply.code(303).header("location", `/login?next=${encodeURIComponent(path)}`).header("cache-control", "no-store").send();
  };
}
