/** `deckhand serve`: start the server, log what is configured and what is missing, stop cleanly on signals. */
import type { Config } from "../config/config.ts";
import { createDeckhand, type Role } from "../app.ts";
import { chooseLogFormat, createLogger } from "../log/logger.ts";
import { apiTokenFile } from "./auth.ts";
import { mountIntegrations } from "../integrations/index.ts";
import { startTracing } from "../ops/tracing.ts";

/** Pure: the start-up summary as a short list a person can read. */
export function startupSummary(o: { url: string; role: Role; lines: string[]; tokenNote: string }): string {
  const roleNote = o.role === "all" ? "web + worker" : o.role === "web" ? "web only: HTTP, no run loops" : "worker only: run loops, health and metrics";
  return [`Deckhand is listening on ${o.url} (role: ${roleNote})`, ...o.lines.map((l) => `  • ${l}`), `  • CLI token: ${o.tokenNote}`].join("\n");
}

export async function serve(config: Config, opts: { role?: Role } = {}): Promise<void> {
  // Data at rest: whatever this process creates (database files, tokens, bundles) is readable by its owner only.
  process.umask(0o077);
  const format = chooseLogFormat(config.LOG_FORMAT, process.stdout.isTTY);
  const log = createLogger({ level: config.LOG_LEVEL, format });
  const tracing = await startTracing(config, log);
  const role = opts.role ?? config.DECKHAND_ROLE;
  const deckhand = await createDeckhand(config, { log, role });
  if (tracing) deckhand.onClose(() => tracing.shutdown());
  const integrations = await mountIntegrations(deckhand);
  const url = await deckhand.listen();
  const lines = [...config.summary, ...integrations];
  const tokenNote = config.API_TOKEN ? "API_TOKEN" : apiTokenFile(config.DATA_DIR);
  const text = startupSummary({ url, role, lines, tokenNote });
  // Readable: the list itself. JSON: one line with the list as a field, no escaped newlines in the message.
  if (format === "pretty") log.info(text);
  else log.info({ url, role, publicUrl: config.PUBLIC_URL, configured: lines, apiToken: tokenNote }, text.split("\n")[0]!);
  if (!deckhand.provider.isolated && role !== "web") log.warn("Sandboxes are NOT isolated (bubblewrap unavailable): install it with `apt-get install -y bubblewrap`.");
  // A bug in a handler (ours or a library's) must not take every run's server down with it: log and keep serving.
  process.on("unhandledRejection", (err) => log.error({ err }, "unhandled rejection (the server keeps running)"));
  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    // Readiness first: load balancers stop sending work while loops and connections wind down.
    deckhand.drain();
    log.info({ signal, timeoutSeconds: config.SHUTDOWN_TIMEOUT }, "shutting down (readiness is now 503)");
    const limit = setTimeout(() => {
      log.error({ timeoutSeconds: config.SHUTDOWN_TIMEOUT }, "shutdown took longer than SHUTDOWN_TIMEOUT: exiting now");
      process.exit(1);
    }, config.SHUTDOWN_TIMEOUT * 1000);
    await deckhand.close().catch((e) => log.error({ err: e }, "shutdown failed"));
    clearTimeout(limit);
    log.info("stopped");
    process.exit(0);
  };
  process.on("SIGINT", () => void shutdown("SIGINT"));
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  await new Promise(() => {});
}
