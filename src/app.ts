/**
 * The composition root: builds the Deckhand server from a Config. Everything is wired here and nowhere else.
 */
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import rateLimit from "@fastify/rate-limit";
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from "fastify";
import type { Config } from "./config/config.ts";
import { gatewayRoutes } from "./gateway/routes.ts";
import { type Database, migrate, openDatabase } from "./db/database.ts";
import { createLogger, type Logger } from "./log/logger.ts";
import { Outbox } from "./notify/outbox.ts";
import { RelayReceiver } from "./relay/receiver/relay-receiver.ts";
import type { ResultPublisher } from "./runs/deliver.ts";
import { describeBreaker } from "./runs/circuit-breaker.ts";
import { queueStatus } from "./runs/queue.ts";
import { HostHeartbeat, resolveHostId } from "./runs/hosts.ts";
import { Reconciler } from "./runs/reconciler.ts";
import { githubWebOrigin, RepoRegistry } from "./runs/repos.ts";
import { RunBus } from "./runs/run-bus.ts";
import { RunService } from "./runs/run-service.ts";
import { RunStore } from "./runs/run-store.ts";
import { createSandboxProvider, sandboxChannelSocket } from "./sandbox/index.ts";
import type { SandboxProvider } from "./sandbox/provider.ts";
import { createReaper, type SandboxReaper } from "./sandbox/reaper.ts";
import { QuestionTimer } from "./runs/answers.ts";
import { checkBearer, resolveApiToken } from "./server/auth.ts";
import { bearerGuard, failureGate } from "./server/guards.ts";
import { HttpError } from "./server/http-errors.ts";
import { apiRoutes } from "./server/routes/api.ts";
import { pageRoutes } from "./server/routes/pages.ts";
import { listenSandboxChannel, sandboxChannelRoutes } from "./server/sandbox-channel.ts";
import { SessionStore } from "./web/session-store.ts";
import { restrictDataDir } from "./server/data-dir.ts";
import { healthRoutes } from "./ops/health.ts";
import { createMetrics, type Metrics } from "./ops/metrics.ts";

export interface Deckhand {
  config: Config;
  log: Logger;
  database: Database;
  store: RunStore;
  service: RunService;
  bus: RunBus;
  provider: SandboxProvider;
  repos: RepoRegistry;
  reconciler: Reconciler;
  /** Kills sandboxes whose run is finished or unknown; extends live ones (started with the reconciler). */
  reaper: SandboxReaper;
  /** Messages owed to Slack, Linear, ...: register a SurfaceNotifier here. */
  outbox: Outbox;
  http: FastifyInstance;
  apiToken: string;
  /** Dashboard sessions (integration routes that need a signed-in person ask here). */
  sessions: SessionStore;
  /** Every route registered on the HTTP server (method + URL), collected by an onRoute hook. */
  routes: { method: string; url: string }[];
  /** Add a result publisher (GitHub pull requests, ...). */
  addPublisher(p: ResultPublisher): void;
  /** web: HTTP only; worker: reconciler, outbox, reaper (plus health and metrics); all: both. */
  role: Role;
  metrics: Metrics;
  /** Flip /readyz to 503 (the first step of a graceful shutdown). */
  drain(): void;
  readonly draining: boolean;
  /** Run something when the server closes. */
  onClose(fn: () => Promise<void> | void): void;
  listen(): Promise<string>;
  close(): Promise<void>;
}

export type Role = "web" | "worker" | "all";

export interface CreateOptions {
  /** Default: config.DECKHAND_ROLE. */
  role?: Role;
  log?: Logger;
  provider?: SandboxProvider;
  /** Reconciler tick interval override (tests). */
  reconcileIntervalMs?: number;
  /** Don't start the reconciler (a process that only serves HTTP). */
  noReconciler?: boolean;
}

let relayBundleCache: Promise<Buffer> | null = null;
async function relayBundle(dataDir: string): Promise<Buffer> {
  relayBundleCache ??= (async () => {
    const { buildRelayBundle } = await import("./relay/agent/build.ts");
    const out = path.join(dataDir, "relay", "relay.mjs");
    await buildRelayBundle(out);
    return fs.readFileSync(out);
  })().catch((e) => {
    relayBundleCache = null;
    throw e;
  });
  return relayBundleCache;
}

/** Largest refused body the server still reads (and discards) so that the client sees its 413. */
const DRAIN_MAX_BYTES = 64 * 1024 * 1024;

export async function createDeckhand(config: Config, opts: CreateOptions = {}): Promise<Deckhand> {
  const log = opts.log ?? createLogger({ level: config.LOG_LEVEL });
  const role: Role = opts.role ?? config.DECKHAND_ROLE;
  const serveWeb = role !== "worker";
  const runLoops = role !== "web";
  restrictDataDir(config.DATA_DIR);
  const database = await openDatabase({ url: config.DATABASE_URL, dataDir: config.DATA_DIR, log });
  await migrate(database);
  if (database.kind === "pglite") restrictDataDir(config.DATA_DIR, "pglite");
  const bus = new RunBus(database);
  await bus.start();
  const store = new RunStore(database.db, bus);
  const repos = new RepoRegistry(config.REPOS, process.cwd(), githubWebOrigin(config.GITHUB_API_URL));
  const service = new RunService(store, repos, config.PUBLIC_URL, config.DEFAULT_REPO, log, config.model?.allowed);
  const provider = opts.provider ?? (await createSandboxProvider(config, log));
  const receiver = new RelayReceiver(database.db, store, bus, log, {
    maxEventBytes: config.MAX_EVENT_BYTES,
    maxRunEvents: config.MAX_RUN_EVENTS,
    maxRunEventBytes: config.MAX_RUN_EVENT_BYTES,
  });
  const apiToken = resolveApiToken(config)!;
  const sessions = new SessionStore(database.db, apiToken);
  await sessions.revokeStale();
  const publishers: ResultPublisher[] = [];
  const closers: (() => Promise<void> | void)[] = [];

  // Several hosts: this process heartbeats under its host's id; only the host of a local sandbox acts on it.
  const hosts = new HostHeartbeat({
    db: database.db,
    hostId: resolveHostId(config.DATA_DIR, config.HOST_ID),
    everyMs: config.HOST_HEARTBEAT_SECONDS * 1000,
    deadAfterMs: config.HOST_DEAD_AFTER_SECONDS * 1000,
    log,
  });
  const reconciler = new Reconciler({
    hosts,
    db: database.db,
    config,
    store,
    bus,
    provider,
    provision: { config, store, provider, repos, relayBundle: () => relayBundle(config.DATA_DIR) },
    deliver: { store, repos, dataDir: config.DATA_DIR, publishers, runPageUrl: (r) => service.runPageUrl(r) },
    log,
    intervalMs: opts.reconcileIntervalMs,
  });

  const reaper = createReaper(config, provider, store, log);
  const questionTimer = new QuestionTimer({ store, timeoutMs: config.QUESTION_TIMEOUT_SECONDS * 1000, log });
  const queueOf = (run: import("./db/schema.ts").Run) =>
    queueStatus(database.db, run, {
      maxConcurrent: config.MAX_CONCURRENT_RUNS,
      repoMax: config.REPO_MAX_CONCURRENT_RUNS,
      providerNote: () => reconciler.breaker.describe(),
    });
  const outbox = new Outbox({ db: database.db, store, bus, log, runPageUrl: (r) => service.runPageUrl(r), queueOf, maxBackoffMs: config.NOTIFY_MAX_BACKOFF_SECONDS * 1000 });

  const routes: { method: string; url: string }[] = [];
  const app = Fastify({
    // Request lines are noise at info level; errors are logged by the error handler.
    loggerInstance: log.child({ component: "http" }, { level: log.levelVal > 30 ? log.level : "warn" }) as unknown as FastifyBaseLogger,
    // Relay long polls would hold a shutdown for up to 25 s; the relay reconnects to whichever process is up.
    forceCloseConnections: true,
    bodyLimit: config.MAX_BODY_BYTES,
    serverFactory: (handler) => {
      const listener = (req: http.IncomingMessage, res: http.ServerResponse) => handler(req, res);
      const server = http.createServer(listener);
      // `Expect: 100-continue`: say "continue" only once a handler starts reading the body, so a body declared
      // over the limit gets its 413 before the client sends it (instead of 100 Continue, then a reset).
      server.on("checkContinue", (req, res) => {
        req.once("resume", () => {
          if (!res.headersSent && !res.writableEnded) res.writeContinue();
        });
        listener(req, res);
      });
      return server;
    },
  }) as unknown as FastifyInstance;
  app.addHook("onRoute", (r) => {
    for (const method of [r.method].flat()) routes.push({ method, url: r.url });
  });
  await app.register(rateLimit, { global: false });
  const gate = failureGate(app, { max: config.AUTH_FAILURES_PER_WINDOW, windowMs: config.AUTH_FAILURE_WINDOW_SECONDS * 1000 });
  const guard = bearerGuard(apiToken, gate);
  // A body declared over the limit without `Expect`: the client is sending it anyway. Read and discard it (up to
  // DRAIN_MAX_BYTES) so the client gets the 413 instead of a connection reset; larger ones are cut off.
  app.addHook("onSend", async (req, reply) => {
    if (reply.statusCode !== 413 || req.headers.expect) return;
    const declared = Number(req.headers["content-length"] ?? Number.NaN);
    if (Number.isFinite(declared) && declared <= DRAIN_MAX_BYTES) reply.removeHeader("connection");
  });
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    const status = err instanceof HttpError ? err.statusCode : err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status >= 500) req.log.error({ err }, "request failed");
    const message = status >= 500 ? "internal error" : err.message;
    reply.code(status).send({ error: message, ...(err instanceof HttpError && err.details ? { details: err.details } : {}) });
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: `no route for ${req.method} ${req.url.split("?")[0]}` }));
  // Anyone may ask whether the server is up; what it runs on is for the API token's holder.
  app.get("/healthz", async (req, reply) => {
    await database.db.execute("select 1" as never).catch(() => {
      throw new HttpError(503, "database unavailable");
    });
    if (req.headers.authorization === undefined) return { ok: true };
    if (gate.lockedOut(req, reply)) return reply;
    if (!checkBearer(req.headers.authorization, apiToken)) {
      if (await gate.failed(req, reply)) return reply;
      return { ok: true };
    }
    const status = await reconciler.breaker.status();
    const { mayTry: _, ...breaker } = status;
    return {
      ok: true,
      database: database.kind,
      sandbox: provider.name,
      isolated: provider.isolated,
      model: config.model?.id ?? null,
      // The sandbox provider's circuit breaker (one row shared by every process): "open" means no new sandboxes.
      sandboxBreaker: { ...breaker, message: describeBreaker(status, provider.name) },
    };
  });
  let draining = false;
  let starting = true;
  healthRoutes(app, { database, role, state: () => ({ draining, starting }) });
  const metrics = createMetrics({ db: database.db, breaker: () => reconciler.breaker.status(), provider: provider.name, role });
  let metricsServer: http.Server | null = null;
  if (config.METRICS_PORT === undefined) {
    // Guarded like the API (bearer token, failed tokens rate-limited), in a plugin of its own.
    app.register(async (m) => {
      m.addHook("onRequest", guard);
      m.get("/metrics", async (_req, reply) => {
        reply.type(metrics.contentType);
        return await metrics.text();
      });
    });
  }
  const gateway = { config, store, bus, log };
  let channel: FastifyInstance | null = null;
  if (serveWeb) {
    apiRoutes(app, { service, bus, guard, queueOf });
    sandboxChannelRoutes(app, { receiver, gateway });
    pageRoutes(app, {
      service,
      bus,
      apiToken,
      sessions,
      gate,
      publicUrl: config.PUBLIC_URL,
      log,
      live: { perRun: config.MAX_LIVE_PER_RUN, total: config.MAX_LIVE_TOTAL },
      doctor: async () => (await import("./ops/doctor.ts")).runDoctor(config, database),
    });
  }

  const deckhand: Deckhand = {
    config,
    log,
    database,
    store,
    service,
    bus,
    provider,
    repos,
    reconciler,
    reaper,
    outbox,
    http: app,
    apiToken,
    sessions,
    routes,
    role,
    metrics,
    drain: () => void (draining = true),
    get draining() {
      return draining;
    },
    addPublisher: (p) => void publishers.push(p),
    onClose: (fn) => void closers.push(fn),
    async listen() {
      await app.listen({ port: config.PORT, host: config.HOST });
      if (config.HOST === "127.0.0.1" || config.HOST === "localhost" || config.HOST === "::1") {
        log.info({ host: config.HOST }, `Listening on ${config.HOST} only: set HOST=0.0.0.0 to listen on every interface (containers, other machines)`);
      }
      if (config.METRICS_PORT !== undefined) {
        const server = http.createServer((req, res) => {
          if ((req.url ?? "/").split("?")[0] !== "/metrics") return void res.writeHead(404, { "content-type": "application/json" }).end('{"error":"only /metrics here"}');
          metrics.text().then(
            (body) => res.writeHead(200, { "content-type": metrics.contentType }).end(body),
            (e) => {
              log.error({ err: e }, "metrics failed");
              res.writeHead(500, { "content-type": "application/json" }).end('{"error":"internal error"}');
            },
          );
        });
        metricsServer = server;
        await new Promise<void>((resolve, reject) => server.once("error", reject).listen(config.METRICS_PORT, config.HOST, () => resolve()));
      }
      // Local sandboxes (created by the process that runs the loops) reach the backend only through this socket.
      if (provider.name === "local" && runLoops) channel = await listenSandboxChannel(sandboxChannelSocket(config), { receiver, gateway }, { bodyLimit: config.MAX_BODY_BYTES, log });
      await hosts.start();
      if (runLoops && !opts.noReconciler) reconciler.start();
      if (runLoops && !opts.noReconciler) reaper.start();
      if (runLoops) outbox.start();
      if (runLoops && !opts.noReconciler) questionTimer.start();
      starting = false;
      const addr = app.server.address();
      return typeof addr === "object" && addr ? `http://127.0.0.1:${addr.port}` : String(addr);
    },
    async close() {
      draining = true;
      metricsServer?.closeAllConnections();
      if (metricsServer) await new Promise((r) => metricsServer!.close(r));
      await reconciler.stop();
      await hosts.stop();
      await reaper.stop();
      await questionTimer.stop();
      await outbox.stop();
      for (const c of closers.reverse()) await c();
      await app.close();
      await channel?.close();
      await bus.stop();
      await provider.close?.();
      await database.close();
    },
  };
  return deckhand;
}
