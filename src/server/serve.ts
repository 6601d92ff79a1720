/** `deckhand serve`: start the server, log what is configured and what is missing, stop cleanly on signals. */
import type { Config } from "../config/config.ts";
import { createDeckhand } from "../app.ts";
import { createLogger } from "../log/logger.ts";
import { apiTokenFile } from "./auth.ts";
import { mountIntegrations } from "../integrations/index.ts";

export async function serve(config: Config): Promise<void> {
  // Data at rest: whatever this process creates (database files, tokens, bundles) is readable by its owner only.
  process.umask(0o077);
  const log = createLogger({ level: config.LOG_LEVEL });
  const deckhand = await createDeckhand(config, { log });
  const integrations = await mountIntegrations(deckhand);
  const url = await deckhand.listen();
  log.info(
    {
      url,
      publicUrl: config.PUBLIC_URL,
      configured: [...config.summary, ...integrations],
      apiToken: config.API_TOKEN ? "API_TOKEN" : apiTokenFile(config.DATA_DIR),
    },
    `Deckhand is listening on ${url}\n  ${[...config.summary, ...integrations].join("\n  ")}\n  CLI token: ${config.API_TOKEN ? "API_TOKEN" : apiTokenFile(config.DATA_DIR)}`,
  );
  if (!deckhand.provider.isolated) log.warn("Sandboxes are NOT isolated (bubblewrap unavailable): install it with `apt-get install -y bubblewrap`.");
  // A bug in a handler (ours or a library's) must not take every run's server down with it: log and keep serving.
  process.on("unhandledRejection", (err) => log.error({ err }, "unhandled rejection (the server keeps running)"));
  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    log.info({ signal }, "shutting down");
    await deckhand.close().catch((e) => log.error({ err: e }, "shutdown failed"));
    process.exit(0);
  };
  process.on("SIGINT", () => void shutdown("SIGINT"));
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  await new Promise(() => {});
}
