import { DEFAULT_MAX_EVENT_BYTES, type RelayEnv } from "../protocol.ts";

export interface RelayConfig {
  runId: string;
  backendUrl: string;
  relayToken: string;
  opencodeUrl: string;
  opencodePassword: string;
  opencodeDirectory: string;
  opencodePidFile: string;
  opencodeLogFile: string;
  stateDir: string;
  heartbeatMs: number;
  /** Largest event (JSON bytes) sent; larger strings are cut with a visible marker (the receiver enforces its own). */
  maxEventBytes: number;
  /** Questions and approval asks wait for a person (the backend's `answer` commands) instead of being settled. */
  askPeople: boolean;
}

const REQUIRED: (keyof RelayEnv)[] = [
  "DECKHAND_RUN_ID",
  "DECKHAND_BACKEND_URL",
  "DECKHAND_RELAY_TOKEN",
  "OPENCODE_URL",
  "OPENCODE_SERVER_PASSWORD",
  "OPENCODE_DIRECTORY",
  "OPENCODE_PID_FILE",
  "OPENCODE_LOG_FILE",
  "DECKHAND_STATE_DIR",
];

/** Reads the relay's configuration from the environment (see RelayEnv). Throws naming every missing variable. */
export function configFromEnv(env: Record<string, string | undefined>): RelayConfig {
  const missing = REQUIRED.filter((k) => !env[k]);
  if (missing.length) throw new Error(`missing environment: ${missing.join(", ")}`);
  const hb = Number(env.DECKHAND_HEARTBEAT_MS ?? "");
  const maxEv = Number(env.DECKHAND_MAX_EVENT_BYTES ?? "");
  const trim = (u: string) => u.replace(/\/+$/, "");
  return {
    runId: env.DECKHAND_RUN_ID!,
    backendUrl: trim(env.DECKHAND_BACKEND_URL!),
    relayToken: env.DECKHAND_RELAY_TOKEN!,
    opencodeUrl: trim(env.OPENCODE_URL!),
    opencodePassword: env.OPENCODE_SERVER_PASSWORD!,
    opencodeDirectory: env.OPENCODE_DIRECTORY!,
    opencodePidFile: env.OPENCODE_PID_FILE!,
    opencodeLogFile: env.OPENCODE_LOG_FILE!,
    stateDir: env.DECKHAND_STATE_DIR!,
    heartbeatMs: Number.isFinite(hb) && hb > 0 ? hb : 15_000,
    maxEventBytes: Number.isFinite(maxEv) && maxEv >= 4096 ? maxEv : DEFAULT_MAX_EVENT_BYTES,
    askPeople: env.DECKHAND_ASK_PEOPLE === "1",
  };
}
