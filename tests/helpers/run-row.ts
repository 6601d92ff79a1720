/** A complete `runs` row for pure tests: neutral bookkeeping fields at time `at`, identity fields from `over`. */
import type { Run } from "../../src/db/schema.ts";

export function runRow(at: Date, over: Partial<Run> & Pick<Run, "id" | "status" | "repo" | "branch" | "prompt" | "title" | "source">): Run {
  return {
    statusReason: null,
    statusChangedAt: at,
    failureCode: null,
    ref: null,
    baseCommit: null,
    sourceRef: {},
    createdBy: null,
    pageToken: "tok",
    relayTokenHash: null,
    sandboxProvider: null,
    sandboxId: null,
    sandboxDestroyedAt: null,
    opencodeSessionId: null,
    phases: [{ phase: "queued", at: at.toISOString() }],
    attempts: 0,
    leaseOwner: null,
    leaseExpiresAt: null,
    lastHeartbeatAt: null,
    lastActivityAt: null,
    opencodeAlive: null,
    lastEventSeq: 0,
    idleInputSeq: null,
    deliveredInputSeq: 0,
    keepaliveUntil: null,
    result: null,
    diff: null,
    createdAt: at,
    updatedAt: at,
    startedAt: null,
    finishedAt: null,
    ...over,
  };
}
