/**
 * Operating one server through a real run: /livez and /readyz (and readiness flipping first on shutdown), /metrics
 * parsed as Prometheus text with the run counters moving, and OpenTelemetry spans received by a local OTLP/HTTP
 * collector, carrying the run id from creation to provisioning, relay ingest, delivery.
 */
import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../src/log/logger.ts";
import { recordModelUsage } from "../../src/ops/metrics.ts";
import { startTracing, type Tracing } from "../../src/ops/tracing.ts";
import { scripts } from "../fakes/model-server.ts";
import { startTestServer, type TestServer } from "../helpers/harness.ts";
import { parsePrometheus, value } from "./prom-text.ts";

interface OtlpSpan {
  name: string;
  attributes: { key: string; value: { stringValue?: string; intValue?: string } }[];
}

/** A local OTLP/HTTP collector (JSON): keeps every span it receives. */
async function startCollector(): Promise<{ url: string; spans: OtlpSpan[]; close(): Promise<void> }> {
  const spans: OtlpSpan[] = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      if (req.url === "/v1/traces") {
        const j = JSON.parse(body) as { resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[] };
        for (const rs of j.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans);
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, spans, close: () => new Promise((r) => server.close(() => r())) };
}

/** POST on a connection of its own (no keep-alive pool). */
function postFresh(url: string, token: string, body: unknown): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: "POST", agent: false, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" } }, (res) => {
      let text = "";
      res.on("data", (c) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

const attr = (s: OtlpSpan, key: string) => s.attributes.find((a) => a.key === key)?.value.stringValue;

describe("health, metrics and traces during a real run", () => {
  let srv: TestServer;
  let collector: Awaited<ReturnType<typeof startCollector>>;
  let tracing: Tracing | null;

  beforeAll(async () => {
    collector = await startCollector();
    tracing = await startTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_SERVICE_NAME: "deckhand-test" }, createLogger({ level: "silent" }));
    srv = await startTestServer({ handler: scripts.writeFile("notes.md", "# Notes\n", "Added notes.md.") });
  }, 300_000);
  afterAll(async () => {
    await srv?.close();
    await tracing?.shutdown();
    await collector?.close();
  });

  const scrape = async (token: string | null = srv.deckhand.apiToken) => {
    const get = () => fetch(`${srv.url}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    // A keep-alive socket the server closed a moment ago (ECONNRESET): a GET is safe to send again.
    const r = await get().catch(get);
    return { status: r.status, type: r.headers.get("content-type"), text: await r.text() };
  };

  it("answers /livez and /readyz (database reachable, migrations applied, not draining)", async () => {
    expect((await srv.api("GET", "/livez", undefined, null)).body).toMatchObject({ ok: true, role: "all" });
    const ready = await srv.api("GET", "/readyz", undefined, null);
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({ ready: true, checks: { database: "ok", migrations: "ok", draining: false } });
  });

  it("/metrics needs the API token, and its counters move during a run", async () => {
    expect((await scrape(null)).status).toBe(401);
    expect((await scrape("wrong-token-0123456789")).status).toBe(401);
    const before = parsePrometheus((await scrape()).text);
    expect(value(before, "deckhand_runs", { status: "idle", source: "cli" }) ?? 0).toBe(0);
    expect(value(before, "deckhand_sandbox_breaker_state", { provider: "local" })).toBe(0);
    expect(value(before, "nodejs_eventloop_lag_seconds")).toBeGreaterThanOrEqual(0);

    // A fresh connection: on this busy machine a pooled keep-alive socket may have been closed by the server.
    const created = await postFresh(`${srv.url}/api/runs`, srv.deckhand.apiToken, { repo: "demo", prompt: "Write notes.md", source: "cli" });
    expect(created.status).toBe(201);
    const run = await srv.waitFor(created.body.id, ["idle", "failed"], 240_000);
    expect(run.status, run.reason).toBe("idle");
    expect(run.source).toBe("cli");
    recordModelUsage({ input: 120, output: 30, costUsd: 0.25, model: "m" });

    const res = await scrape();
    expect(res.status).toBe(200);
    expect(res.type).toMatch(/^text\/plain/);
    const after = parsePrometheus(res.text);
    expect(value(after, "deckhand_runs", { status: "idle", source: "cli" })).toBe(1);
    expect(value(after, "deckhand_queue_depth")).toBe(0);
    expect(value(after, "deckhand_provisioning_duration_seconds_count")).toBe(1);
    expect(value(after, "deckhand_provisioning_duration_seconds_sum")).toBeGreaterThan(0);
    expect(value(after, "deckhand_relay_events_ingested_total")).toBeGreaterThan(0);
    expect(value(after, "deckhand_model_tokens_total", { kind: "total", model: "m" })).toBe(150);
    expect(value(after, "deckhand_model_cost_usd_total", { model: "m" })).toBe(0.25);
  }, 300_000);

  it("exports spans with the run id from creation to provisioning, relay ingest and delivery", async () => {
    const id = (await srv.api("GET", "/api/runs?limit=1")).body.runs[0].id as string;
    const end = Date.now() + 20_000;
    const names = () => new Set(collector.spans.filter((s) => attr(s, "deckhand.run_id") === id).map((s) => s.name));
    while (Date.now() < end && !["run.create", "run.provision", "relay.ingest", "run.deliver"].every((n) => names().has(n))) await new Promise((r) => setTimeout(r, 300));
    expect([...names()].sort()).toEqual(expect.arrayContaining(["run.create", "run.deliver", "run.provision", "relay.ingest"]));
    const create = collector.spans.find((s) => s.name === "run.create" && attr(s, "deckhand.run_id") === id)!;
    expect(attr(create, "deckhand.source")).toBe("cli");
  }, 60_000);

  it("a draining server answers 503 on /readyz while /livez stays up", async () => {
    srv.deckhand.drain();
    const ready = await srv.api("GET", "/readyz", undefined, null);
    expect(ready.status).toBe(503);
    expect(ready.body).toMatchObject({ ready: false, checks: { draining: true } });
    expect((await srv.api("GET", "/livez", undefined, null)).status).toBe(200);
  });
});
