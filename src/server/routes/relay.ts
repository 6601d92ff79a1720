/** HTTP face of the relay receiver. Every route needs the run's bearer relay token; anything else is a 401. */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { RelayAuthError, RelayBatchError, type RelayReceiver } from "../../relay/receiver/relay-receiver.ts";
import { bearer } from "../auth.ts";
import { HttpError } from "../http-errors.ts";
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

export function relayRoutes(app: FastifyInstance, receiver: RelayReceiver) {
  const auth = async (runId: string, header: string | undefined) => {
    try {
      return await receiver.authenticate(runId, bearer(header));
    } catch (e) {
      if (e instanceof RelayAuthError) throw new HttpError(401, e.message);
      throw e;
    }
  };
  type P = { Params: { runId: string } };

  app.post<P>("/relay/v1/runs/:runId/events", { bodyLimit: 32 * 1024 * 1024 }, async (req) => {
    const run = await auth(req.params.runId, req.headers.authorization);
    try {
      return await receiver.ingest(run, parse(Batch, req.body) as never);
    } catch (e) {
      if (e instanceof RelayBatchError) throw new HttpError(400, e.message);
      throw e;
    }
  });
  app.post<P>("/relay/v1/runs/:runId/heartbeat", async (req) => {
    const run = await auth(req.params.runId, req.headers.authorization);
    await receiver.heartbeat(run, parse(Heartbeat, req.body));
    return { ok: true };
  });
  app.get<P>("/relay/v1/runs/:runId/commands", async (req) => {
    const run = await auth(req.params.runId, req.headers.authorization);
    const q = parse(CommandsQuery, req.query);
    const ac = new AbortController();
    req.raw.on("close", () => ac.abort());
    return receiver.commands(run, q.after, q.waitMs, ac.signal);
  });
  app.post<P>("/relay/v1/runs/:runId/commands/ack", async (req) => {
    const run = await auth(req.params.runId, req.headers.authorization);
    await receiver.ack(run, parse(Ack, req.body).seq);
    return { ok: true };
  });
}
