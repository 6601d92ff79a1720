/**
 * The composition root: builds the Deckhand server from a Config. Everything is wired here and nowhere else.
 */
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from "fastify";
import type { Config } from "./config/config.ts";
import { type Database, migrate, openDatabase } from "./db/database.ts";
import { createLogger, type Logger } from "./log/logger.ts";
import { Outbox } from "./notify/outbox.ts";
import { RelayReceiver } from "./relay/receiver/relay-receiver.ts";
import type { ResultPublisher } from "./runs/deliver.ts";
import { queueStatus } from "./runs/queue.ts";
import { Reconciler } from "./runs/reconciler.ts";
import { githubWebOrigin, RepoRegistry } from "./runs/repos.ts";
import { RunBus } from "./runs/run-bus.ts";
import { RunService } from "./runs/run-service.ts";
import { RunStore } from "./runs/run-store.ts";
import { createSandboxProvider } from "./sandbox/index.ts";
import type { SandboxProvider } from "./sandbox/provider.ts";
import { createReaper, type SandboxReaper } from "./sandbox/reaper.ts";
import { resolveApiToken } from "./server/auth.ts";
import { HttpError } from "./server/http-errors.ts";
import { apiRoutes } from "./server/routes/api.ts";
import { pageRoutes } from "./server/routes/pages.ts";
import { checkBearer } from "./server/auth.ts";
import { healthRoutes } from "./ops/health.ts";
import { spanForResponse } from "./ops/tracing.ts";
import { createMetrics, type Metrics } from "./ops/metrics.ts";
import { relayRoutes } from "./server/routes/relay.ts";

/** A handler that wants the raw Node request (signature checks over the raw body: Slack, Linear). */
export type RawHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

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
  /** Mount a raw handler at an exact path (before Fastify's routing). */
  mountRaw(pathname: string, handler: RawHandler): void;
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

export async function createDeckhand(config: Config, opts: CreateOptions = {}): Promise<Deckhand> {
  const log = opts.log ?? createLogger({ level: config.LOG_LEVEL });
  const role: Role = opts.role ?? config.DECKHAND_ROLE;
  const serveWeb = role !== "worker";
  const runLoops = role !== "web";
  fs.mkdirSync(config.DATA_DIR, { recursive: true });
  const database = await openDatabase({ url: config.DATABASE_URL, dataDir: config.DATA_DIR });
  await migrate(database);
  const bus = new RunBus(database);
  await bus.start();
  const store = new RunStore(database.db, bus);
  const repos = new RepoRegistry(config.REPOS, process.cwd(), githubWebOrigin(config.GITHUB_API_URL));
  const service = new RunService(store, repos, config.PUBLIC_URL, config.DEFAULT_REPO, log);
  const provider = opts.provider ?? (await createSandboxProvider(config, log));
  const receiver = new RelayReceiver(database.db, store, bus, log);
  const apiToken = resolveApiToken(config)!;
  const publishers: ResultPublisher[] = [];
  const closers: (() => Promise<void> | void)[] = [];

  const reconciler = new Reconciler({
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
  const queueOf = (run: import("./db/schema.ts").Run) =>
    queueStatus(database.db, run, {
      maxConcurrent: config.MAX_CONCURRENT_RUNS,
      repoMax: config.REPO_MAX_CONCURRENT_RUNS,
      providerNote: () => reconciler.breaker.describe(provider.name),
    });
  const outbox = new Outbox({ db: database.db, store, bus, log, runPageUrl: (r) => service.runPageUrl(r), queueOf });

  const raw = new Map<string, RawHandler>();
  const app = Fastify({
    // Request lines are noise at info level; errors are logged by the error handler.
    loggerInstance: log.child({ component: "http" }, { level: log.levelVal > 30 ? log.level : "warn" }) as unknown as FastifyBaseLogger,
    // Relay long polls would hold a shutdown for up to 25 s; the relay reconnects to whichever process is up.
    forceCloseConnections: true,
    bodyLimit: config.MAX_BODY_BYTES,
    serverFactory: (handler) =>
      http.createServer((req, res) => {
        const pathname = (req.url ?? "/").split("?")[0]!;
        const h = serveWeb ? raw.get(pathname) : undefined;
        if (h) return spanForResponse(`webhook ${pathname}`, { "http.request.method": req.method ?? "", "url.path": pathname }, res, () => h(req, res));
        handler(req, res);
      }),
  }) as unknown as FastifyInstance;
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    const status = err instanceof HttpError ? err.statusCode : err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status >= 500) req.log.error({ err }, "request failed");
    const message = status >= 500 ? "internal error" : err.message;
    reply.code(status).send({ error: message, ...(err instanceof HttpError && err.details ? { details: err.details } : {}) });
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: `no route for ${req.method} ${req.url.split("?")[0]}` }));
  app.get("/healthz", async () => {
    await database.db.execute("select 1" as never).catch(() => {
      throw new HttpError(503, "database unavailable");
    });
    const breaker = reconciler.breaker.status();
    return {
      ok: true,
      database: database.kind,
      sandbox: provider.name,
      isolated: provider.isolated,
      model: config.model?.id ?? null,
      // The sandbox provider's circuit breaker: "open" means no new sandboxes are created for now.
      sandboxBreaker: { ...breaker, message: reconciler.breaker.describe(provider.name) },
    };
  });
  let draining = false;
  let starting = true;
  healthRoutes(app, { database, role, state: () => ({ draining, starting }) });
  const metrics = createMetrics({ db: database.db, breaker: () => reconciler.breaker.status(), provider: provider.name, role });
  let metricsServer: http.Server | null = null;
  if (config.METRICS_PORT === undefined) {
    app.get("/metrics", async (req, reply) => {
      if (!checkBearer(req.headers.authorization, apiToken)) throw new HttpError(401, "missing or invalid API token (Authorization: Bearer <API_TOKEN>), or set METRICS_PORT");
      reply.type(metrics.contentType);
      return await metrics.text();
    });
  }
  if (serveWeb) {
    apiRoutes(app, { service, bus, apiToken, queueOf });
    relayRoutes(app, receiver);
    pageRoutes(app, { service, bus, apiToken, publicUrl: config.PUBLIC_URL, log, doctor: async () => (await import("./ops/doctor.ts")).runDoctor(config, database) });
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
    role,
    metrics,
    drain: () => void (draining = true),
    get draining() {
      return draining;
    },
    mountRaw: (p, h) => void raw.set(p, h),
    addPublisher: (p) => void publishers.push(p),
    onClose: (fn) => void closers.push(fn),
    async listen() {
      await app.listen({ port: config.PORT, host: config.HOST });
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
      if (runLoops && !opts.noReconciler) reconciler.start();
      if (runLoops && !opts.noReconciler) reaper.start();
      if (runLoops) outbox.start();
      starting = false;
      const addr = app.server.address();
      return typeof addr === "object" && addr ? `http://127.0.0.1:${addr.port}` : String(addr);
    },
    async close() {
      draining = true;
      metricsServer?.closeAllConnections();
      if (metricsServer) await new Promise((r) => metricsServer!.close(r));
      await reconciler.stop();
      await reaper.stop();
      await outbox.stop();
      for (const c of closers.reverse()) await c();
      await app.close();
      await bus.stop();
      await provider.close?.();
      await database.close();
    },
  };
  return deckhand;
}
