/** What the API, the CLI and the run page show of a run: a pure function of the row and its stored digest. */
import type { Run } from "../db/schema.ts";
import type { RunDigest } from "../events/vocabulary.ts";
import { failureInfo } from "./model.ts";
import type { QueueStatus } from "./queue.ts";

export interface RunView {
  id: string;
  status: string;
  reason: string | null;
  failureCode: string | null;
  /** What to do about the failure (the catalogue in model.ts), when there is something to do. */
  hint: string | null;
  repo: string;
  ref: string | null;
  branch: string;
  title: string;
  prompt: string;
  source: string;
  sourceRef: Record<string, unknown>;
  createdBy: string | null;
  url: string;
  phases: { phase: string; at: string }[];
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number;
  result: Record<string, unknown> | null;
  currentAction: string | null;
  todos: RunDigest["todos"];
  usage: RunDigest["usage"];
  /** The model chosen for this run (null: the configured default). */
  model: string | null;
  lastEventSeq: number;
  heartbeatAt: string | null;
  /** A queued run: its position and what it waits for (see queue.ts); null otherwise. */
  queue: QueueStatus | null;
  /** The agent's questions and approval asks waiting for a person (only while the run works). */
  questions: RunDigest["questions"];
}

/** Usage as measured by the model gateway (exact, from the provider's own counts), else OpenCode's report. */
export function measuredUsage(run: Run, reported: RunDigest["usage"]): RunDigest["usage"] {
  if (!run.modelRequests) return reported;
  return {
    input: run.usageInput,
    output: run.usageOutput,
    reasoning: 0,
    cacheRead: run.usageCacheRead,
    cacheWrite: run.usageCacheWrite,
    cost: run.usageCostMicros / 1_000_000,
  };
}

export function runView(run: Run, d: RunDigest, pageUrl: string, now = new Date(), queue: QueueStatus | null = null): RunView {
  const end = run.finishedAt ?? (run.status === "idle" ? run.statusChangedAt : now);
  return {
    id: run.id,
    status: run.status,
    reason: run.statusReason,
    failureCode: run.failureCode,
    hint: failureInfo(run.failureCode)?.hint ?? null,
    repo: run.repo,
    ref: run.ref,
    branch: run.branch,
    title: run.title,
    prompt: run.prompt,
    source: run.source,
    sourceRef: run.sourceRef,
    createdBy: run.createdBy,
    url: pageUrl,
    phases: run.phases,
    createdAt: run.createdAt.toISOString(),
    startedAt: run.startedAt?.toISOString() ?? null,
    finishedAt: run.finishedAt?.toISOString() ?? null,
    durationMs: Math.max(0, end.getTime() - run.createdAt.getTime()),
    result: run.result ?? null,
    currentAction: d.currentAction,
    todos: d.todos,
    usage: measuredUsage(run, d.usage),
    model: run.model,
    lastEventSeq: run.lastEventSeq,
    heartbeatAt: run.lastHeartbeatAt?.toISOString() ?? null,
    queue,
    questions: run.status === "running" ? (d.questions ?? []) : [],
  };
}

export function viewOf(run: Run, d: RunDigest, pageUrl: string, queue: QueueStatus | null = null): RunView & { timeline: RunDigest["timeline"]; timelineDropped: number } {
  return { ...runView(run, d, pageUrl, new Date(), queue), timeline: d.timeline, timelineDropped: d.timelineDropped };
}
