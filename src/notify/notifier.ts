/**
 * The surface-notifier interface: how a run's progress reaches the place it came from (Slack, Linear, ...).
 *
 * A notifier is split in two:
 * - `plan`: a pure decision from the run, its digest and the surface's saved state → messages owed now.
 *   Each message has a deterministic `dedupeKey`, so planning the same state twice (or in two server
 *   processes) queues it once.
 * - `send`: the I/O, called by the outbox sender with one stored message; throw `RetryLater` for 429/5xx.
 */
import type { Notification, Run } from "../db/schema.ts";
import type { RunDigest } from "../events/vocabulary.ts";
import type { AnswerSource } from "../runs/answers.ts";
import type { RunView } from "../runs/run-view.ts";

export interface OutboxMessage {
  /** Unique forever: the same key is queued once. */
  dedupeKey: string;
  /** Messages sharing an ordering key are sent strictly in the order they were queued (e.g. one Slack thread). */
  orderingKey: string;
  /** Free-form kind; `coalesce: true` kinds skip older pending rows of the same kind and ordering key. */
  kind: string;
  payload: Record<string, unknown>;
  /** A newer pending message of the same kind and ordering key makes this one unnecessary (status edits). */
  coalesce?: boolean;
  /**
   * `progress`: worth sending only while nothing newer has happened; dropped (never sent) when a `final` message
   * of the same ordering key is pending, so a final result never waits behind stale progress after an outage.
   * `final`: a turn's or the run's result; retried more eagerly (backoff capped at a few seconds).
   */
  role?: "progress" | "final";
}

export interface PlanInput {
  run: Run;
  view: RunView;
  digest: RunDigest;
  /** What this surface remembered about the run (saved by a previous plan or send). */
  state: Record<string, unknown>;
  now: Date;
  /**
   * The latest prompts this run received from elsewhere than its own surface (the run page, the API, the CLI, or
   * another surface), oldest first, at most FOREIGN_PROMPTS_MAX: the surface shows them, so its conversation
   * reads whole however the run was steered.
   */
  foreignPrompts?: ForeignPrompt[];
  /** Who answered the run's questions and where (read only once a question was settled). */
  answers?: AnswerSource[];
}

export interface ForeignPrompt {
  seq: number;
  text: string;
  author: string | null;
  source: string;
}

export const FOREIGN_PROMPTS_MAX = 20;

const SOURCE_NAMES: ReadonlyMap<string, string> = new Map([
  ["web", "the run page"],
  ["api", "the API"],
  ["cli", "the CLI"],
  ["slack", "Slack"],
  ["linear", "Linear"],
]);

/** Where an input came from, in words ("the run page"); an unknown source is named as it is. */
export function sourceName(source: string): string {
  return SOURCE_NAMES.get(source) ?? source;
}

export interface Plan {
  messages: OutboxMessage[];
  /** New surface state to save (merged). */
  state?: Record<string, unknown>;
}

export interface SendContext {
  /** Read and merge this surface's state for the run (e.g. to remember a Slack message ts). */
  getState(runId: string): Promise<Record<string, unknown>>;
  setState(runId: string, patch: Record<string, unknown>): Promise<void>;
}

export interface SurfaceNotifier {
  readonly surface: string;
  /** Does this run report to this surface? */
  wants(run: Run): boolean;
  plan(input: PlanInput): Plan;
  /** Deliver one message. Return what to remember of the answer (stored on the outbox row). */
  send(message: Notification, ctx: SendContext): Promise<Record<string, unknown> | void>;
  /** Minimum time between two sends of one ordering key (Slack: ~1 s per message edits). */
  minIntervalMs?: number;
}

/** Throw from `send` for a temporary failure (rate limit, 5xx, network): the message is retried. */
export class RetryLater extends Error {
  constructor(
    message: string,
    public readonly afterMs?: number,
  ) {
    super(message);
    this.name = "RetryLater";
  }
}
