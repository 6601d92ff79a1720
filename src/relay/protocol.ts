/**
 * The wire protocol between the in-sandbox relay and the backend's relay receiver. Types only (no runtime
 * dependencies) so the relay bundles to one small file. Every connection starts from the sandbox.
 *
 *   POST {base}/relay/v1/runs/{runId}/events     EventBatch  → EventAck           push events, at-least-once
 *   POST {base}/relay/v1/runs/{runId}/heartbeat  Heartbeat   → { ok: true }     every 15 s
 *   GET  {base}/relay/v1/runs/{runId}/commands?after={seq}&waitMs={ms}  → CommandBatch   long poll
 *   POST {base}/relay/v1/runs/{runId}/commands/ack  { seq }  → { ok: true }
 *
 * All with `Authorization: Bearer <per-run relay token>`. 401 = wrong token or the run is over: the relay stops.
 */
export const RELAY_PROTOCOL_VERSION = 1;

/** One event from the sandbox. `seq` is per run, starts at 1 and increases by one: the receiver stores each once. */
export interface RelayEvent {
  seq: number;
  /** An OpenCode event type (`session.idle`, `message.part.updated`, ...) or one of RELAY_EVENT. */
  type: string;
  /** ISO time it happened in the sandbox. */
  at: string;
  data: Record<string, unknown>;
}

/** Default per-event size limit (JSON bytes of `data`): the relay cuts longer strings, the receiver enforces it. */
export const DEFAULT_MAX_EVENT_BYTES = 128 * 1024;

export interface EventBatch {
  events: RelayEvent[];
}

export interface EventAck {
  /** Highest sequence number such that every event 1..ackedSeq is stored. */
  ackedSeq: number;
}

export interface Heartbeat {
  at: string;
  /** Is OpenCode's process alive and answering? */
  opencodeAlive: boolean;
  /** Last time OpenCode showed any sign of work (an event, a log line). */
  lastActivityAt?: string;
  /** Is the session busy (working on a prompt)? */
  busy?: boolean;
  /** Events written but not yet acknowledged. */
  outboxPending: number;
  relayVersion: number;
}

export interface RelayCommand {
  /** The input's sequence number within the run: the relay applies each once, in order. */
  seq: number;
  kind: "prompt" | "abort" | "shutdown" | "answer";
  text?: string;
  /** `answer`: a person's answer to a question (`answers`, one list per question) or an approval ask (`reply`). */
  answer?: { kind: "question"; requestId: string; answers: string[][] } | { kind: "permission"; requestId: string; reply: "once" | "reject" };
}

export interface CommandBatch {
  commands: RelayCommand[];
}

/** Events the relay itself emits (as opposed to OpenCode's). */
export const RELAY_EVENT = {
  started: "deckhand.relay_started",
  /** OpenCode answered and the session exists: `{ sessionId }`. */
  opencodeReady: "deckhand.opencode_ready",
  /** A prompt input was handed to OpenCode: `{ inputSeq }`. */
  promptDelivered: "deckhand.prompt_delivered",
  /** The session is confirmed idle after every prompt up to `inputSeq`: `{ inputSeq, error? }`. */
  agentIdle: "deckhand.agent_idle",
  /** OpenCode's process is gone: `{ reason }`. */
  opencodeExited: "deckhand.opencode_exited",
  /** The relay hit a problem it could not recover from: `{ message }`. */
  error: "deckhand.relay_error",
} as const;

/** Environment the backend gives the relay process. */
export interface RelayEnv {
  DECKHAND_RUN_ID: string;
  DECKHAND_BACKEND_URL: string;
  DECKHAND_RELAY_TOKEN: string;
  OPENCODE_URL: string;
  OPENCODE_SERVER_PASSWORD: string;
  OPENCODE_DIRECTORY: string;
  OPENCODE_PID_FILE: string;
  OPENCODE_LOG_FILE: string;
  DECKHAND_STATE_DIR: string;
  DECKHAND_HEARTBEAT_MS?: string;
  DECKHAND_MAX_EVENT_BYTES?: string;
  /** "1": questions and approval asks wait for a person's `answer` command; else they are settled at once. */
  DECKHAND_ASK_PEOPLE?: string;
}
