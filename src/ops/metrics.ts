/**
 * Prometheus metrics. Two kinds:
 * - process metrics fed by hooks where things happen (provisioning, first feedback, relay ingest, model usage),
 *   in one module-level registry so any module (the model gateway included) can feed them;
 * - cluster gauges read from the database at scrape time (runs by status and source, queue depth, outbox), so
 *   every process reports the same truth whichever one Prometheus scrapes.
 */
import { sql } from "drizzle-orm";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Db } from "../db/database.ts";
import type { BreakerStatus } from "../runs/circuit-breaker.ts";

const processRegistry = new Registry();
// Node's own: event-loop delay (nodejs_eventloop_lag_*), heap, GC, handles.
collectDefaultMetrics({ register: processRegistry });

const provisioning = new Histogram({
  name: "deckhand_provisioning_duration_seconds",
  help: "Time from a provisioning attempt's start to a sandbox with OpenCode ready",
  buckets: [1, 2, 5, 10, 20, 30, 60, 120, 300, 600],
  registers: [processRegistry],
});
const firstFeedback = new Histogram({
  name: "deckhand_time_to_first_feedback_seconds",
  help: "Time from a run's creation to the first message delivered on a surface",
  labelNames: ["surface"],
  buckets: [0.5, 1, 2, 5, 10, 20, 30, 60, 120],
  registers: [processRegistry],
});
const relayEvents = new Counter({
  name: "deckhand_relay_events_ingested_total",
  help: "Relay events received from sandboxes (rate() of this is the ingest rate)",
  registers: [processRegistry],
});
const relayBatches = new Counter({ name: "deckhand_relay_batches_ingested_total", help: "Relay event batches received", registers: [processRegistry] });
const modelTokens = new Counter({
  name: "deckhand_model_tokens_total",
  help: "Model tokens used, by kind (input, output, reasoning, total)",
  labelNames: ["kind", "model"],
  registers: [processRegistry],
});
const modelCost = new Counter({ name: "deckhand_model_cost_usd_total", help: "Model cost in US dollars", labelNames: ["model"], registers: [processRegistry] });

const liveRenders = new Counter({
  name: "deckhand_live_renders_total",
  help: "Live page fragments rendered (kind run: one run's regions, once per change, shared by all its viewers; kind list: the runs list)",
  labelNames: ["kind"],
  registers: [processRegistry],
});
const liveUnchanged = new Counter({
  name: "deckhand_live_unchanged_total",
  help: "Live page wake-ups that found nothing new: nothing rendered, nothing sent",
  labelNames: ["kind"],
  registers: [processRegistry],
});

/** A live feed rendered its fragment (`rendered`) or found nothing new to render. */
export function recordLiveRefresh(kind: "run" | "list", rendered: boolean): void {
  (rendered ? liveRenders : liveUnchanged).inc({ kind });
}

export function observeProvisioning(seconds: number): void {
  provisioning.observe(seconds);
}
export function observeFirstFeedback(surface: string, seconds: number): void {
  firstFeedback.observe({ surface }, Math.max(0, seconds));
}
export function recordRelayIngest(events: number): void {
  relayBatches.inc();
  if (events > 0) relayEvents.inc(events);
}

export interface ModelUsage {
  /** Total tokens; or give the parts (input/output/reasoning) and the total is their sum. */
  tokens?: number;
  input?: number;
  output?: number;
  reasoning?: number;
  costUsd?: number;
  model?: string;
}

/** The hook for whatever meters model calls (the model gateway): counts tokens and cost. Bad numbers are ignored. */
export function recordModelUsage(u: ModelUsage): void {
  const model = (u.model ?? "unknown").slice(0, 100);
  const ok = (n: number | undefined): n is number => typeof n === "number" && Number.isFinite(n) && n > 0;
  let sum = 0;
  for (const kind of ["input", "output", "reasoning"] as const) {
    const n = u[kind];
    if (ok(n)) {
      modelTokens.inc({ kind, model }, n);
      sum += n;
    }
  }
  const total = ok(u.tokens) ? u.tokens : sum;
  if (total > 0) modelTokens.inc({ kind: "total", model }, total);
  if (ok(u.costUsd)) modelCost.inc({ model }, u.costUsd);
}

const BREAKER_VALUE: Record<BreakerStatus["state"], number> = { closed: 0, half_open: 1, open: 2 };

/** Gauges read from the database (the provider breaker's shared row included) at scrape time. One per server instance. */
export function createMetrics(deps: { db: Db; breaker: () => Promise<BreakerStatus>; provider: string; role: string }) {
  const registry = new Registry();
  const rows = async <T>(q: ReturnType<typeof sql>): Promise<T[]> => {
    const r = (await deps.db.execute(q as never)) as unknown as { rows?: T[] } | T[];
    return Array.isArray(r) ? r : (r.rows ?? []);
  };
  new Gauge({
    name: "deckhand_runs",
    help: "Runs by status and source (all runs in the database)",
    labelNames: ["status", "source"],
    registers: [registry],
    async collect() {
      this.reset();
      for (const r of await rows<{ status: string; source: string; n: number }>(sql`select status, source, count(*)::int as n from runs group by status, source`))
        this.set({ status: r.status, source: r.source }, Number(r.n));
    },
  });
  new Gauge({
    name: "deckhand_queue_depth",
    help: "Runs waiting for a sandbox (status queued)",
    registers: [registry],
    async collect() {
      const [r] = await rows<{ n: number }>(sql`select count(*)::int as n from runs where status = 'queued'`);
      this.set(Number(r?.n ?? 0));
    },
  });
  const pending = new Gauge({ name: "deckhand_outbox_pending", help: "Notifications not yet delivered, by surface", labelNames: ["surface"], registers: [registry] });
  new Gauge({
    name: "deckhand_outbox_oldest_pending_age_seconds",
    help: "Age of the oldest undelivered notification, by surface",
    labelNames: ["surface"],
    registers: [registry],
    async collect() {
      this.reset();
      pending.reset();
      const rs = await rows<{ surface: string; n: number; age: number }>(
        sql`select surface, count(*)::int as n, extract(epoch from (now() - min(created_at)))::float8 as age from notifications where state = 'pending' group by surface`,
      );
      for (const r of rs) {
        pending.set({ surface: r.surface }, Number(r.n));
        this.set({ surface: r.surface }, Math.max(0, Number(r.age)));
      }
    },
  });
  new Gauge({
    name: "deckhand_sandbox_breaker_state",
    help: "The sandbox provider's circuit breaker (shared by every process): 0 closed, 1 half-open, 2 open (no new sandboxes)",
    labelNames: ["provider"],
    registers: [registry],
    async collect() {
      this.set({ provider: deps.provider }, BREAKER_VALUE[(await deps.breaker()).state]);
    },
  });
  new Gauge({ name: "deckhand_process_info", help: "This process's role", labelNames: ["role"], registers: [registry] }).set({ role: deps.role }, 1);
  return {
    contentType: registry.contentType,
    async text(): Promise<string> {
      return await Registry.merge([processRegistry, registry]).metrics();
    },
  };
}
export type Metrics = ReturnType<typeof createMetrics>;
