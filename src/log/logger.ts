/**
 * Structured logs (pino). Every line about a run carries `runId`: use `runLog(log, runId)`.
 * Secrets never reach logs: known secret fields are redacted wherever they appear.
 */
import pino, { type Logger } from "pino";
import pretty from "pino-pretty";

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

export type LogFormat = "pretty" | "json";

/** Pure: the format to use. An explicit LOG_FORMAT wins; otherwise readable lines on a terminal, JSON elsewhere. */
export function chooseLogFormat(explicit: LogFormat | undefined, isTTY: boolean | undefined): LogFormat {
  return explicit ?? (isTTY ? "pretty" : "json");
}

export function createLogger(
  opts: { level?: string; name?: string; destination?: pino.DestinationStream; format?: LogFormat } = {},
): Logger {
  const destination =
    opts.format === "pretty"
      ? pretty({
          sync: true,
          colorize: process.stdout.isTTY ?? false,
          translateTime: "SYS:HH:MM:ss",
          ignore: "pid,hostname,name",
          singleLine: false,
          destination: (opts.destination as never) ?? 1,
        })
      : opts.destination;
  return pino(
    {
      name: opts.name ?? "deckhand",
      level: opts.level ?? "info",
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      base: { pid: process.pid },
    },
    destination,
  );
}

export function runLog(log: Logger, runId: string): Logger {
  return log.child({ runId });
}
