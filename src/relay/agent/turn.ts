/**
 * The idle decision: when may the relay say "the agent is done with every prompt up to N"?
 *
 * OpenCode's `/session/status` still says idle for ~100 ms after `prompt_async` returns, and a `session.idle`
 * of the previous turn can arrive just after a new prompt was handed over. So besides "status is idle", the
 * session must have been seen busy since the last delivery — or the delivery is old enough (a lost stream can
 * hide the whole busy phase of a short turn).
 */
export type SessionStatusType = "idle" | "busy" | "retry";

export interface TurnState {
  deliveredSeq: number; // highest prompt seq handed to OpenCode
  deliveredAt: number; // when (ms)
  idleEmittedSeq: number; // highest seq agent_idle was emitted for
  sawBusySinceDelivery: boolean;
}

export const BUSY_GRACE_MS = 10_000;

/** Is a turn outstanding (a delivered prompt without its agent_idle)? */
export function awaitingIdle(s: TurnState): boolean {
  return s.deliveredSeq > s.idleEmittedSeq;
}

/** Emit `deckhand.agent_idle` for `s.deliveredSeq` now, given the confirmed status of our session? */
export function shouldEmitIdle(s: TurnState, status: SessionStatusType, now: number, graceMs = BUSY_GRACE_MS): boolean {
  if (!awaitingIdle(s) || status !== "idle") return false;
  return s.sawBusySinceDelivery || now - s.deliveredAt >= graceMs;
}

/** Our session's status in a `GET /session/status` answer (`{}` when all idle: a missing session is idle). */
export function statusOf(statusMap: unknown, sessionId: string): SessionStatusType {
  const t = (statusMap as Record<string, { type?: string }> | null)?.[sessionId]?.type;
  return t === "busy" || t === "retry" ? t : "idle";
}
