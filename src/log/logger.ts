/**
 * Structured logs (pino). Every line about a run carries `runId`: use `runLog(log, runId)`.
 * Secrets never reach logs: known secret fields are redacted wherever they appear.
 */
import pino, { type Logger } from "pino";

export type { Logger };

export const REDACT_PATHS = [
  "token",
  "*.token",
  "authorization",
  "*.authorization",
  "headers.authorization",
  "req.headers.authorization",
  "req.headers.cookie",
  'req.headers["x-slack-signature"]',
  'req.headers["linear-signature"]',
  "apiKey",
  "*.apiKey",
  "password",
  "*.password",
  "env",
  "*.env",
  "relayToken",
  "*.relayToken",
  "accessToken",
  "*.accessToken",
  "privateKey",
  "*.privateKey",
];

export function createLogger(opts: { level?: string; name?: string; destination?: pino.DestinationStream } = {}): Logger {
  return pino(
    {
      name: opts.name ?? "deckhand",
      level: opts.level ?? "info",
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      base: { pid: process.pid },
    },
    opts.destination,
  );
}

export function runLog(log: Logger, runId: string): Logger {
  return log.child({ runId });
}
