/** Guards for raw handlers (mounted outside Fastify's router): the same rules as the route plugins. */
import type { RawHandler } from "../app.ts";
import type { SessionStore } from "../web/session-store.ts";

/** Only a signed-in dashboard session reaches `next`; anyone else is sent to the sign-in page. */
export function requireSession(sessions: SessionStore, path: string, next: RawHandler): RawHandler {
  return (req, res) => {
    sessions.fromCookieHeader(req.headers.cookie).then(
      (s) => {
        if (s) return next(req, res);
        res.writeHead(303, { location: `/login?next=${encodeURIComponent(path)}`, "cache-control": "no-store" }).end();
      },
      () => {
        if (!res.headersSent) res.writeHead(503, { "content-type": "application/json" }).end(JSON.stringify({ error: "sessions unavailable" }));
      },
    );
  };
}
