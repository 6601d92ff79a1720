/**
 * When is the agent done? Tracks the session's busy/idle status from the event stream, confirms with
 * `GET /session/status` (serialized checks; a status poll while a turn is open, so a lost `session.idle` never
 * hangs a run) and emits `deckhand.agent_idle` once per delivered input. The decision itself is in turn.ts.
 */
import { RELAY_EVENT } from "../protocol.ts";
import { sleep } from "./backoff.ts";
import { errMsg, log } from "./log.ts";
import type { OpencodeClient } from "./opencode.ts";
import type { StateStore } from "./state.ts";
import { awaitingIdle, shouldEmitIdle, statusOf, type TurnState } from "./turn.ts";

export interface IdleWatchDeps {
  state: StateStore;
  oc: OpencodeClient;
  emit(type: string, data: Record<string, unknown>): void;
  sessionId(): string | undefined;
  opencodeExited(): boolean;
  signal: AbortSignal;
  statusPollMs: number;
}

export class IdleWatch {
  /** Is the session busy, as far as we know? */
  busy = false;
  private sawBusySinceDelivery = false;
  private deliveryEpoch = 0;
  private turnError?: string;
  private checking = false;
  private checkAgain = false;

  constructor(private readonly d: IdleWatchDeps) {}

  turnState(): TurnState {
    const s = this.d.state.value;
    return {
      deliveredSeq: s.deliveredSeq,
      deliveredAt: s.deliveredAt,
      idleEmittedSeq: s.idleEmittedSeq,
      sawBusySinceDelivery: this.sawBusySinceDelivery,
    };
  }

  /** Is a delivered input still waiting for its agent_idle? */
  awaiting(): boolean {
    return awaitingIdle(this.turnState());
  }

  /** A `session.status` event of our session. */
  onStatus(type: string | undefined): void {
    this.busy = type === "busy" || type === "retry";
    if (this.busy) this.sawBusySinceDelivery = true;
  }

  /** A `session.error` of our session: reported with the turn's agent_idle. */
  onError(message: string | undefined): void {
    if (this.awaiting()) this.turnError = message;
  }

  /** A prompt is about to be handed to OpenCode: status answers from before it no longer count. */
  beforeDelivery(): void {
    this.sawBusySinceDelivery = false;
    this.deliveryEpoch++;
  }

  /** Confirms with GET /session/status and emits agent_idle when due. Serialized; `always` also refreshes `busy`. */
  schedule(why: string, always = false): void {
    if (!this.d.sessionId() || (!always && !this.awaiting() && !this.busy)) return;
    if (this.checking) {
      this.checkAgain = true;
      return;
    }
    this.checking = true;
    void (async () => {
      try {
        do {
          this.checkAgain = false;
          await this.checkOnce(why);
        } while (this.checkAgain && !this.d.signal.aborted);
      } finally {
        this.checking = false;
      }
    })();
  }

  /** While a turn is open, checks every statusPollMs. */
  async pollLoop(): Promise<void> {
    while (!this.d.signal.aborted && !this.d.opencodeExited()) {
      await sleep(this.d.statusPollMs, this.d.signal);
      if (this.awaiting() || this.busy) this.schedule("poll");
    }
  }

  private async checkOnce(why: string): Promise<void> {
    const sessionId = this.d.sessionId();
    if (!sessionId || this.d.opencodeExited()) return;
    const epoch = this.deliveryEpoch;
    let status;
    try {
      status = statusOf(await this.d.oc.status(), sessionId);
    } catch (err) {
      log("warn", "status check failed", { why, error: errMsg(err) });
      return; // the status loop tries again
    }
    if (epoch !== this.deliveryEpoch) {
      this.checkAgain = true; // a prompt was delivered meanwhile: that answer may predate it
      return;
    }
    this.busy = status !== "idle";
    if (this.busy) this.sawBusySinceDelivery = true;
    if (!shouldEmitIdle(this.turnState(), status, Date.now())) return;
    const inputSeq = this.d.state.value.deliveredSeq;
    this.d.state.update({ idleEmittedSeq: inputSeq });
    const error = this.turnError;
    this.turnError = undefined;
    this.d.emit(RELAY_EVENT.agentIdle, { inputSeq, ...(error ? { error } : {}) });
    log("info", "agent idle", { inputSeq, why, error });
  }
}
