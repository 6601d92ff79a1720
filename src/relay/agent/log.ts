/** Structured stderr logging: one JSON object per line. Callers never pass secrets (tokens, passwords). */
export type LogLevel = "debug" | "info" | "warn" | "error";

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const envLevel = process.env.DECKHAND_RELAY_LOG_LEVEL ?? "";
let minLevel: LogLevel = Object.hasOwn(ORDER, envLevel) ? (envLevel as LogLevel) : "info";

export function setLogLevel(level: LogLevel): void {
  minLevel = level;
}

export function log(level: LogLevel, msg: string, fields: Record<string, unknown> = {}): void {
  if (ORDER[level] < ORDER[minLevel]) return;
  const line: Record<string, unknown> = { t: new Date().toISOString(), level, msg, ...fields };
  try {
    process.stderr.write(JSON.stringify(line) + "\n");
  } catch {
    /* stderr gone: nothing to do */
  }
}

export function errMsg(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
