/** HTTP face of the relay receiver. Every route needs the run's bearer relay token; anything else is a 401. */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { RelayAuthError, type RelayReceiver } from "../../relay/receiver/relay-receiver.ts";
import { bearer } from "../auth.ts";
import { HttpError, toHttp } from "../http-errors.ts";
import { parse } from "./api.ts";

const Event = z.object({
  seq: z.number().int().positive().max(2_147_483_647),
  type: z.string().min(1).max(200),
  at: z.string().refine((s) => !Number.isNaN(Date.parse(s)), "must be an ISO time"),
  // Any JSON object: its fields are read with src/events/safe.ts, and it is cut to MAX_EVENT_BYTES when stored.
  data: z.record(z.string(), z.unknown()),
});
const Batch = z.object({ events: z.array(Event).max(5000) });
const Heartbeat = z.object({
  at: z.string(),
  opencodeAlive: z.boolean(),
  lastActivityAt: z.string().optional(),
  busy: z.boolean().optional(),
  outboxPending: z.number().int().min(0).default(0),
  relayVersion: z.number().int().default(1),
});
const CommandsQuery = z.object({ after: z.coerce.number().int().min(0).max(2_147_483_647).default(0), waitMs: z.coerce.number().int().min(0).max(30_000).default(25_000) });
const Ack = z.object({ seq: z.number().int().positive().max(2_147_483_647) });

/** Per-route body limits: a batch of events may be big; a heartbeat or an ack is tiny. */
export const RELAY_BODY_LIMITS = { events: 32 * 1024 * 1024, heartbeat: 16 * 1024, ack: 4 * 1024 } as const;

/**
 * The relay's routes, as one encapsulated plugin: its `onRequest` hook checks the run's relay token before any
 * body is read, so an unauthenticated upload is answered 401 at once. Self-contained: it can be registered on
 * more than one listener.
 */
export function relayRoutes(app: FastifyInstance, receiver: RelayReceiver) {
  app.register(async (relay) => relayPlugin(relay, receiver));
}

function relayPlugin(app: FastifyInstance, receiver: RelayReceiver) {
  const authed = new WeakMap<object, Awaited<ReturnType<RelayReceiver["authenticate"]>>>();
  app.addHook("onRequest", async (req, reply) => {
    const runId = (req.params as { runId?: unknown } | undefined)?.runId;
    try {
      if (typeof runId !== "string") throw new RelayAuthError();
      authed.set(req, await receiver.authenticate(runId, bearer(req.headers.authorization)));
    } catch (e) {
      if (!(e instanceof RelayAuthError)) throw e;
      // Close the connection: whatever body follows is not read.
      return reply.code(401).header("connection", "close").send({ error: e.message });
    }
  });
  const runOf = (req: object) => {
    const run = authed.get(req);
    if (!run) throw new HttpError(401, "not authenticated");
    return run;
  };
  type P = { Params: { runId: string } };

  app.post<P>("/relay/v1/runs/:runId/events", { bodyLimit: RELAY_BODY_LIMITS.events }, async (req) => {
    return await receiver.ingest(runOf(req), parse(Batch, req.body) as never).catch(toHttp);
  });
  app.post<P>("/relay/v1/runs/:runId/heartbeat", { bodyLimit: RELAY_BODY_LIMITS.heartbeat }, async (req) => {
    await receiver.heartbeat(runOf(req), parse(Heartbeat, req.body));
    return { ok: true };
  });
  app.get<P>("/relay/v1/runs/:runId/commands", async (req) => {
    const run = runOf(req);
    const q = parse(CommandsQuery, req.query);
    const ac = new AbortController();
    req.raw.on("close", () => ac.abort());
    return receiver.commands(run, q.after, q.waitMs, ac.signal);
  });
  app.post<P>("/relay/v1/runs/:runId/commands/ack", { bodyLimit: RELAY_BODY_LIMITS.ack }, async (req) => {
    await receiver.ack(runOf(req), parse(Ack, req.body).seq);
    return { ok: true };
  });
}
