/**
 * The model gateway's HTTP face: `/gateway/v1/...`, reached from sandboxes with a per-run model token (the real
 * provider key never leaves the backend). Checked in onRequest, before the body is read: a token of a run that is
 * not live is refused. Routes: OpenAI-compatible chat completions and Responses, Anthropic messages, a model list.
 * The run behind a token and its spending come from memory (RunCache, DailySpend): no database round trip before
 * forwarding; usage is written after the response has ended.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Config } from "../config/config.ts";
import type { Run } from "../db/schema.ts";
import { type Logger, runLog } from "../log/logger.ts";
import type { RunBus } from "../runs/run-bus.ts";
import type { RunStore } from "../runs/run-store.ts";
import { bearer } from "../server/auth.ts";
import { HttpError } from "../server/http-errors.ts";
import { checkBudget, type Spending } from "./budget.ts";
import { DailySpend } from "./daily-spend.ts";
import { forward, providerError } from "./forward.ts";
import { costMicros, microsToUsd, parsePrice, type Price, priceFor } from "./prices.ts";
import { isLive, RunCache } from "./run-cache.ts";
import { emptyUsage } from "./usage.ts";
import { UsageStore, utcDay } from "./usage-store.ts";

export interface GatewayDeps {
  config: Config;
  store: RunStore;
  bus: RunBus;
  log: Logger;
}

const ROUTES: { path: string; upstreamPath: string; kind: "openai" | "anthropic" }[] = [
  { path: "/gateway/v1/chat/completions", upstreamPath: "/chat/completions", kind: "openai" },
  { path: "/gateway/v1/responses", upstreamPath: "/responses", kind: "openai" },
  { path: "/gateway/v1/messages", upstreamPath: "/messages", kind: "anthropic" },
];

export function priceOverrides(config: Pick<Config, "MODEL_PRICES">): Record<string, Price> {
  const out: Record<string, Price> = {};
  for (const [k, v] of Object.entries(config.MODEL_PRICES ?? {})) out[k] = parsePrice(v);
  return out;
}

export function gatewayRoutes(app: FastifyInstance, deps: GatewayDeps): UsageStore {
  const { config, store, bus, log } = deps;
  const usage = new UsageStore(store.db);
  const prices = priceOverrides(config);
  const runOf = new WeakMap<FastifyRequest, Run>();
  const cache = new RunCache({
    byTokenHash: (h) => usage.runByTokenHash(h),
    byId: (id) => usage.runById(id),
    onError: (err, runId) => runLog(log, runId).error({ err, component: "gateway" }, "gateway: reading or recording a run failed"),
  });
  const daily = new DailySpend({ read: (day, person) => usage.daySpentMicros(day, person) });
  const offBus = bus.onRun((id) => cache.changed(id));
  // Requests in flight depend on their run's row: re-read it when no change has done so for a while.
  const sweeper = setInterval(() => cache.sweep(), 1000).unref();
  const recording = new Set<Promise<void>>();
  app.addHook("onClose", async () => {
    offBus();
    clearInterval(sweeper);
    await Promise.all([...recording]);
    await cache.idle();
  });

  /** The run behind the model token; refuses before the body is read. */
  const authenticate = async (req: FastifyRequest) => {
    const key = req.headers["x-api-key"];
    const token = bearer(req.headers.authorization) ?? (typeof key === "string" ? key : undefined);
    const run = token ? await cache.lookup(token) : null;
    if (!run) throw new HttpError(401, "missing or invalid model token");
    if (!isLive(run)) throw new HttpError(401, `run ${run.id} is ${run.status}: its model token is no longer valid`);
    runOf.set(req, run);
  };

  /** What the run has spent, its own records still being written included; today's sums when needed. */
  const spending = async (run: Run): Promise<Spending> => {
    const p = cache.pending(run.id);
    const day = utcDay();
    const wantDaily = config.DAILY_BUDGET_USD !== undefined;
    const [total, person] = wantDaily ? await Promise.all([daily.get(day, null), run.createdBy ? daily.get(day, run.createdBy) : 0]) : [0, 0];
    return {
      runUsd: microsToUsd(run.usageCostMicros + p.micros),
      runTokens: run.usageInput + run.usageOutput + run.usageCacheRead + run.usageCacheWrite + p.tokens,
      runExtraUsd: run.budgetExtraUsd,
      personTodayUsd: microsToUsd(person),
      totalTodayUsd: microsToUsd(total),
      person: run.createdBy,
    };
  };

  /** Off the response path, in the run's order: the next budget check of the run counts it at once. */
  const record = (run: Run, rec: Parameters<UsageStore["record"]>[1]) => {
    const now = new Date();
    const u = rec.usage;
    daily.add(utcDay(now), run.createdBy, rec.costMicros);
    const done = cache
      .record(run.id, { micros: rec.costMicros, tokens: u.input + u.output + u.cacheRead + u.cacheWrite }, () => usage.record(run, rec, now))
      .then(() => cache.ownChange(run.id, () => bus.changed(run.id)))
      .catch(() => {}) // logged by the cache
      .finally(() => recording.delete(done));
    recording.add(done);
  };

  app.get("/gateway/v1/models", { onRequest: authenticate }, async (req) => {
    const run = runOf.get(req)!;
    const id = run.model ?? config.model?.name ?? "none";
    return { object: "list", data: [{ id, object: "model", created: 0, owned_by: "deckhand" }] };
  });

  for (const route of ROUTES) {
    app.post(route.path, { onRequest: authenticate, bodyLimit: config.GATEWAY_MAX_BODY_BYTES }, async (req, reply) => {
      const run = runOf.get(req)!;
      const model = config.model;
      const rlog = runLog(log, run.id).child({ component: "gateway" });
      if (!model) throw new HttpError(503, "no model is configured on the Deckhand server");
      if (model.upstream.kind !== route.kind) throw new HttpError(404, `this server's model provider does not serve ${route.path}`);
      const body = req.body;
      if (!body || typeof body !== "object" || Array.isArray(body)) throw new HttpError(400, "expected a JSON object");
      const b = body as Record<string, unknown>;
      // The run's model, whatever the agent asked for: the choice is made by people, within MODELS.
      const modelName = run.model ?? model.name;
      b.model = modelName;
      const stream = b.stream === true;
      if (stream && route.upstreamPath === "/chat/completions") {
        const so = b.stream_options && typeof b.stream_options === "object" ? (b.stream_options as Record<string, unknown>) : {};
        b.stream_options = { ...so, include_usage: true };
      }

      // `run` is current as of every change announced before this request (onRequest).
      const verdict = checkBudget({ runUsd: config.RUN_BUDGET_USD, runTokens: config.RUN_BUDGET_TOKENS, dailyUsd: config.DAILY_BUDGET_USD }, await spending(run));
      if (!verdict.ok) {
        rlog.warn({ code: verdict.code }, "model call refused: over budget");
        const err = providerError(route.kind, 402, verdict.message, verdict.code);
        return reply.code(402).header("content-type", "application/json").send(err.body);
      }

      reply.hijack();
      const res = reply.raw;
      const ac = new AbortController();
      res.on("close", () => {
        if (!res.writableFinished) ac.abort();
      });
      const unwatch = cache.watch(run, () => {
        rlog.info("run stopped: aborting its model request");
        ac.abort();
      });
      const started = performance.now();
      try {
        const out = await forward({
          upstream: model.upstream,
          path: route.upstreamPath,
          body: JSON.stringify(b),
          stream,
          clientHeaders: req.headers,
          res,
          signal: ac.signal,
          retry: { maxRetries: config.GATEWAY_MAX_RETRIES, maxWaitMs: config.GATEWAY_MAX_RETRY_WAIT_SECONDS * 1000 },
        });
        const u = out.tap?.usage ?? emptyUsage();
        const cost = costMicros(u, priceFor(modelName, prices));
        if (out.problem) rlog.warn({ status: out.status, problem: out.problem }, "model request failed");
        if (out.tap) record(run, { model: modelName, status: out.status, usage: u, costMicros: cost, durationMs: performance.now() - started });
        rlog.debug({ status: out.status, bytes: out.bytes, aborted: out.aborted, ...u, costMicros: cost }, "model request");
      } catch (e) {
        rlog.error({ err: e }, "gateway request failed");
        if (!res.headersSent) {
          const err = providerError(route.kind, 500, "internal error in the Deckhand model gateway", "gateway_error");
          res.writeHead(500, { "content-type": "application/json" }).end(err.body);
        } else res.destroy();
      } finally {
        unwatch();
      }
    });
  }

  return usage;
}
