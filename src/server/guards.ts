/**
 * Guards of the front door. Each plugin of routes (API, dashboard, per-run pages, relay) installs one of these as
 * its own `onRequest` hook, so a route is guarded by the plugin it lives in, never by how its URL is spelled.
 * Failed bearer tokens and sign-ins count against the client address (@fastify/rate-limit); past the limit the
 * address gets 429 with Retry-After for every guarded request until the window is over, right or wrong token.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { checkBearer } from "./auth.ts";

export type BearerGuard = (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

const MAX_LOCKED_OUT = 10_000;

export interface FailureGate {
  /** Answers 429 (and returns true) when the client is locked out. */
  lockedOut(req: FastifyRequest, reply: FastifyReply): boolean;
  /** Count one failure; answers 429 (and returns true) when this one crossed the limit. */
  failed(req: FastifyRequest, reply: FastifyReply): Promise<boolean>;
}

/** Needs `@fastify/rate-limit` registered on `app` (global: false). */
export function failureGate(app: FastifyInstance, opts: { max: number; windowMs: number }): FailureGate {
  const limiter = (app as unknown as { createRateLimit: (o: object) => (req: FastifyRequest) => Promise<{ isExceeded: boolean; ttl: number }> }).createRateLimit({
    max: opts.max,
    timeWindow: opts.windowMs,
    keyGenerator: (req: FastifyRequest) => req.ip,
  });
  const until = new Map<string, number>();
  const tooMany = (reply: FastifyReply, ms: number) => {
    const s = Math.max(1, Math.ceil(ms / 1000));
    void reply.code(429).header("retry-after", String(s)).send({ error: `too many failed attempts from your address; try again in ${s} s` });
    return true;
  };
  return {
    lockedOut(req, reply) {
      const t = until.get(req.ip);
      if (t === undefined) return false;
      if (t > Date.now()) return tooMany(reply, t - Date.now());
      until.delete(req.ip);
      return false;
    },
    async failed(req, reply) {
      const r = await limiter(req);
      if (!r.isExceeded) return false;
      if (until.size >= MAX_LOCKED_OUT) {
        const now = Date.now();
        for (const [ip, t] of until) if (t <= now) until.delete(ip);
        if (until.size >= MAX_LOCKED_OUT) until.delete(until.keys().next().value!);
      }
      until.set(req.ip, Date.now() + Math.max(r.ttl, 1000));
      return tooMany(reply, Math.max(r.ttl, 1000));
    },
  };
}

/** onRequest hook: `Authorization: Bearer <API_TOKEN>` or 401 (429 once the address sent too many wrong tokens). */
export function bearerGuard(token: string, gate: FailureGate): BearerGuard {
  return async (req, reply) => {
    if (gate.lockedOut(req, reply)) return reply;
    if (checkBearer(req.headers.authorization, token)) return;
    // A wrong token is a guess and counts; no token at all is not.
    if (req.headers.authorization !== undefined && (await gate.failed(req, reply))) return reply;
    return reply.code(401).send({ error: "missing or invalid API token (Authorization: Bearer <API_TOKEN>)" });
  };
}
