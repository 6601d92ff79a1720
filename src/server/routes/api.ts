/**
 * The REST API: bearer API_TOKEN. Bad input gets a 4xx with a message, and nothing is stored.
 * The routes live in their own encapsulated plugin under the `/api` prefix; the plugin's `onRequest` hook checks
 * the token for every route in it, whatever spelling of the URL the router matched.
 */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { answerQuestion } from "../../runs/answers.ts";
import type { RunService } from "../../runs/run-service.ts";
import type { Run } from "../../db/schema.ts";
import type { QueueStatus } from "../../runs/queue.ts";
import { viewOf } from "../../runs/run-view.ts";
import { isTerminal, RUN_STATUSES } from "../../runs/model.ts";
import type { RunBus } from "../../runs/run-bus.ts";
import type { BearerGuard } from "../guards.ts";
import { HttpError, toHttp, zodMessage } from "../http-errors.ts";
import { readDigest } from "../../events/digest-store.ts";
import { UsageStore, utcDay } from "../../gateway/usage-store.ts";

/** Events returned (with their data) by GET /api/runs/:id; later ones by the long poll. */
const API_EVENTS_MAX = 2000;

const CreateRun = z.object({
  repo: z.string().min(1).max(200).optional(),
  prompt: z.string({ error: "prompt is required (a string)" }).min(1, "prompt must not be empty"),
  ref: z.string().min(1).max(250).optional(),
  /** One of MODELS (default: the configured model). */
  model: z.string().min(1).max(200).optional(),
  createdBy: z.string().max(200).optional(),
  /** Where the request came from: the CLI says so; anything else is the API. */
  source: z.enum(["api", "cli"]).optional(),
});
const Answer = z.object({
  questionId: z.string().max(200).optional(),
  answer: z.string().max(2000).optional(),
  answers: z.array(z.union([z.string().max(2000), z.array(z.string().max(2000)).max(10)])).max(5).optional(),
  approve: z.boolean().optional(),
  author: z.string().max(200).optional(),
  source: z.enum(["api", "cli"]).optional(),
});
const FollowUp = z.object({ text: z.string().min(1, "text must not be empty"), author: z.string().max(200).optional() });
const ListQuery = z.object({
  status: z.enum(RUN_STATUSES).optional(),
  repo: z.string().optional(),
  source: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(500).optional(),
});
const EventsQuery = z.object({ after: z.coerce.number().int().min(0).max(2_147_483_647).default(0), waitMs: z.coerce.number().int().min(0).max(30_000).default(0) });

export function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const r = schema.safeParse(value ?? {});
  if (!r.success) throw new HttpError(400, zodMessage(r.error));
  return r.data;
}

export { toHttp } from "../http-errors.ts";

export function apiRoutes(
  app: FastifyInstance,
  deps: { service: RunService; bus: RunBus; guard: BearerGuard; queueOf?: (run: Run) => Promise<QueueStatus | null> },
) {
  app.register(
    async (api) => {
      api.addHook("onRequest", deps.guard);
      apiPlugin(api, deps);
    },
    { prefix: "/api" },
  );
}

function apiPlugin(app: FastifyInstance, deps: { service: RunService; bus: RunBus; queueOf?: (run: Run) => Promise<QueueStatus | null> }) {
  const { service, bus } = deps;
  const store = service.store;

  const usage = new UsageStore(store.db);
  /** Model usage of one day (UTC), in total, per person and per repo. */
  app.get<{ Querystring: { day?: string } }>("/usage", async (req) => {
    const day = req.query.day ?? utcDay();
    if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) throw new HttpError(400, "day must be YYYY-MM-DD");
    return usage.daySummary(day);
  });

  const load = async (id: string) => {
    const run = await store.get(id);
    if (!run) throw new HttpError(404, `run ${id} not found`);
    return run;
  };

  app.post("/runs", async (req, reply) => {
    const body = parse(CreateRun, req.body);
    const source = body.source ?? "api";
    const run = await service.start({ ...body, source, createdBy: body.createdBy ?? source }).catch(toHttp);
    reply.code(201);
    return { id: run.id, url: service.runPageUrl(run), status: run.status, branch: run.branch, model: run.model };
  });

  app.get("/runs", async (req) => {
    const q = parse(ListQuery, req.query);
    const rows = await store.list(q);
    return {
      runs: rows.map((r) => ({
        id: r.id,
        status: r.status,
        reason: r.statusReason,
        repo: r.repo,
        branch: r.branch,
        title: r.title,
        source: r.source,
        createdBy: r.createdBy,
        createdAt: r.createdAt,
        finishedAt: r.finishedAt,
        // An idle run stops counting when it went idle; a working one counts until now.
        durationMs: Math.max(0, (r.finishedAt ?? (r.status === "idle" ? r.statusChangedAt : new Date())).getTime() - r.createdAt.getTime()),
        url: service.runPageUrl(r),
        resultUrl: (r.result as { url?: string } | null)?.url ?? null,
      })),
    };
  });

  app.get<{ Params: { id: string } }>("/runs/:id", async (req) => {
    const run = await load(req.params.id);
    // The first API_EVENTS_MAX events with their data; the rest by `GET /api/runs/:id/events?after=`.
    const events = await store.events(run.id, 0, API_EVENTS_MAX + 1);
    return {
      ...viewOf(run, await readDigest(store.db, run.id), service.runPageUrl(run), (await deps.queueOf?.(run)) ?? null),
      events: events.slice(0, API_EVENTS_MAX).map((e) => ({ seq: e.seq, type: e.type, at: e.at, data: e.data })),
      moreEvents: events.length > API_EVENTS_MAX,
      diff: run.diff,
    };
  });

  /** Long poll: returns when there are events after `after` or the run changed, or after waitMs. */
  app.get<{ Params: { id: string } }>("/runs/:id/events", async (req) => {
    const q = parse(EventsQuery, req.query);
    let run = await load(req.params.id);
    let events = await store.events(run.id, q.after, 2000);
    if (!events.length && q.waitMs > 0 && !isTerminal(run.status)) {
      const ac = new AbortController();
      req.raw.on("close", () => ac.abort());
      await bus.waitForRun(run.id, q.waitMs, ac.signal);
      run = await load(req.params.id);
      events = await store.events(run.id, q.after, 2000);
    }
    const view = viewOf(run, await readDigest(store.db, run.id), service.runPageUrl(run));
    return { run: { ...view, timeline: undefined }, events: events.map((e) => ({ seq: e.seq, type: e.type, at: e.at })), nextAfter: events.at(-1)?.seq ?? q.after };
  });

  app.post<{ Params: { id: string } }>("/runs/:id/inputs", async (req, reply) => {
    const body = parse(FollowUp, req.body);
    const run = await service.followUp(req.params.id, { text: body.text, author: body.author ?? "api", source: "api" }).catch(toHttp);
    reply.code(202);
    return { id: run.id, status: run.status };
  });

  /** A person's answer to the agent's question or approval ask (the oldest open one when no questionId). */
  app.post<{ Params: { id: string } }>("/runs/:id/answers", async (req, reply) => {
    const body = parse(Answer, req.body);
    const done = await answerQuestion(store, req.params.id, body.questionId ?? null, body, { author: body.author ?? "api", source: body.source ?? "api" }).catch(toHttp);
    reply.code(202);
    return { id: req.params.id, questionId: done.question.id, answered: done.summary };
  });

  app.post<{ Params: { id: string } }>("/runs/:id/stop", async (req, reply) => {
    const run = await service.stop(req.params.id, { author: "api", source: "api" }).catch(toHttp);
    reply.code(202);
    return { id: run.id, status: run.status, reason: run.statusReason };
  });
}
