/**
 * What each write to a run records, typed per intent: a lifecycle transition with its data (a delivered result,
 * ...) and a provisioning sub-phase with its one column. `RunStore` turns them into SQL; nothing else writes runs.
 */
import type { NewRun, Run } from "../db/schema.ts";
import type { RunResult } from "./model.ts";
import type { RunTransition } from "./state-machine.ts";

/** Result and diff of a delivery. */
export interface Delivery {
  result: RunResult;
  diff: string;
}

type TransitionColumns = {
  result_delivered: { delivery: Delivery; keepaliveUntil: Date; deliveredInputSeq: number };
  fail: { delivery?: Delivery };
};
/** A lifecycle transition with the data its intent records (a delivered result, ...): typed per transition. */
export type RunChange = {
  [K in RunTransition["type"]]: Extract<RunTransition, { type: K }> & (K extends keyof TransitionColumns ? TransitionColumns[K] : unknown);
}[RunTransition["type"]];

/** The columns a transition writes besides its status. Pure. */
export function columnsFor(c: RunChange, run: Run, now: Date): Partial<NewRun> {
  switch (c.type) {
    case "sandbox_ready":
      return { startedAt: run.startedAt ?? now };
    case "result_delivered":
      return { result: c.delivery.result, diff: c.delivery.diff, keepaliveUntil: c.keepaliveUntil, deliveredInputSeq: c.deliveredInputSeq };
    case "follow_up":
      return { idleInputSeq: null, keepaliveUntil: null };
    case "fail":
      return c.delivery ? { result: c.delivery.result, diff: c.delivery.diff } : {};
    default:
      return {};
  }
}

/** A sub-phase of provisioning and the one column it records. */
export type PhaseRecord =
  | { phase: "provision_attempt"; attempts: number }
  | { phase: "sandbox_created"; sandboxId: string }
  | { phase: "repo_cloned"; baseCommit: string }
  | { phase: "opencode_started" | "relay_started" | "opencode_ready" | "prompt_delivered" };
