/**
 * The sandbox channel: the only routes a sandbox can reach. The main app registers them too (E2B sandboxes come
 * over the internet); local sandboxes reach a second Fastify instance on a Unix socket bind-mounted into them,
 * which serves these routes and nothing else (no API, no pages, no webhooks).
 */
import fs from "node:fs";
import path from "node:path";
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from "fastify";
import type { Logger } from "../log/logger.ts";
import type { RelayReceiver } from "../relay/receiver/relay-receiver.ts";
import { HttpError } from "./http-errors.ts";
import { type GatewayDeps, gatewayRoutes } from "../gateway/routes.ts";
import { relayRoutes } from "./routes/relay.ts";

export interface SandboxChannelDeps {
  receiver: RelayReceiver;
  /** The model gateway (per-run model tokens): OpenCode in the sandbox reaches the provider only through it. */
  gateway?: GatewayDeps;
}

/** Every sandbox-facing route, registered on the main app and on the socket app alike. */
export function sandboxChannelRoutes(app: FastifyInstance, deps: SandboxChannelDeps): void {
  relayRoutes(app, deps.receiver);
  if (deps.gateway) gatewayRoutes(app, deps.gateway);
}

/** Serve the sandbox channel on a Unix socket; the socket takes the group and mode of its folder (see the local provider). */
export async function listenSandboxChannel(socketPath: string, deps: SandboxChannelDeps, opts: { bodyLimit: number; log: Logger }): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: opts.log.child({ component: "sandbox-channel" }, { level: "warn" }) as unknown as FastifyBaseLogger,
    forceCloseConnections: true,
    bodyLimit: opts.bodyLimit,
  }) as unknown as FastifyInstance;
  app.setErrorHandler((err: Error & { statusCode?: number }, req, reply) => {
    const status = err instanceof HttpError ? err.statusCode : err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status >= 500) req.log.error({ err }, "request failed");
    reply.code(status).send({ error: status >= 500 ? "internal error" : err.message });
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: `no route for ${req.method} ${req.url.split("?")[0]} on the sandbox channel` }));
  sandboxChannelRoutes(app, deps);
  const dir = path.dirname(socketPath);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.rmSync(socketPath, { force: true });
  await app.listen({ path: socketPath });
  const st = fs.statSync(dir);
  const groupShared = (st.mode & 0o070) !== 0;
  if (groupShared && process.getuid?.() === 0) fs.chownSync(socketPath, 0, st.gid);
  fs.chmodSync(socketPath, groupShared ? 0o660 : 0o600);
  return app;
}
