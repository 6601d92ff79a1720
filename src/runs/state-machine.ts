/**
 * The run lifecycle as a pure function. No I/O: callers persist the outcome.
 *
 *   queued → provisioning → running → idle → closed
 *                                   ↖──┘ (a follow-up continues an idle run)
 *   failed / cancelled from queued, provisioning or running, each with a reason.
 *   An idle run that is stopped or loses its sandbox is closed (its result was already delivered).
 */
import { ACTIVE_STATUSES, type FailureCode, type RunStatus } from "./model.ts";

// Statuses and their groups live in model.ts; re-exported for modules not yet moved to it (pages, gateway routes).
export { ACTIVE_STATUSES, isTerminal, LIVE_STATUSES, RUN_STATUSES, type RunStatus, TERMINAL_STATUSES } from "./model.ts";

export type RunTransition =
  | { type: "claim" }
  | { type: "sandbox_ready" }
  | { type: "result_delivered" }
  | { type: "follow_up" }
  | { type: "keepalive_expired" }
  | { type: "fail"; reason: string; code?: FailureCode }
  | { type: "cancel"; reason: string };

export type TransitionOutcome =
  | { ok: true; to: RunStatus; reason?: string; code?: FailureCode }
  | { ok: false; error: string };

export function transition(from: RunStatus, t: RunTransition): TransitionOutcome {
  const bad = (): TransitionOutcome => ({ ok: false, error: `a ${from} run cannot take "${t.type}"` });
  switch (t.type) {
    case "claim":
      return from === "queued" ? { ok: true, to: "provisioning" } : bad();
    case "sandbox_ready":
      return from === "provisioning" ? { ok: true, to: "running" } : bad();
    case "result_delivered":
      return from === "running" ? { ok: true, to: "idle" } : bad();
    case "follow_up":
      return from === "idle" ? { ok: true, to: "running" } : bad();
    case "keepalive_expired":
      return from === "idle" ? { ok: true, to: "closed", reason: "Kept for follow-ups until the keep-alive expired" } : bad();
    case "fail":
      if ((ACTIVE_STATUSES as readonly string[]).includes(from)) return { ok: true, to: "failed", reason: t.reason, code: t.code };
      if (from === "idle") return { ok: true, to: "closed", reason: t.reason, code: t.code };
      return bad();
    case "cancel":
      if ((ACTIVE_STATUSES as readonly string[]).includes(from)) return { ok: true, to: "cancelled", reason: t.reason };
      if (from === "idle") return { ok: true, to: "closed", reason: t.reason };
      return bad();
  }
}
