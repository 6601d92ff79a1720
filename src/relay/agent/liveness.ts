/**
 * Liveness of the OpenCode process, told to the backend: a pid watch (OpenCode gone → `deckhand.opencode_exited`,
 * once per pid, across relay restarts) and heartbeats every DECKHAND_HEARTBEAT_MS (is OpenCode alive and answering,
 * is a turn open, when was the last activity). Never from model output: silent reasoning is fine.
 */
import { RELAY_EVENT, RELAY_PROTOCOL_VERSION } from "../protocol.ts";
import { RunOverError, type BackendClient } from "./backend-client.ts";
import { sleep } from "./backoff.ts";
import type { RelayConfig } from "./config.ts";
import type { IdleWatch } from "./idle-watch.ts";
import { errMsg, log } from "./log.ts";
import { fileSize, pidAlive, readPid, type OpencodeClient } from "./opencode.ts";
import type { StateStore } from "./state.ts";

export interface LivenessDeps {
  cfg: RelayConfig;
  state: StateStore;
  oc: OpencodeClient;
  backend: BackendClient;
  idle: IdleWatch;
  emit(type: string, data: Record<string, unknown>): void;
  outboxPending(): number;
  signal: AbortSignal;
  pidCheckMs: number;
  /** OpenCode's process is gone (called once). */
  onExit(): void;
  onRunOver(err: RunOverError): void;
}

export class Liveness {
  pid?: number;
  exited = false;
  lastActivityAt?: number;
  private logSize = 0;

  constructor(private readonly d: LivenessDeps) {}

  /** Something happened (an event from OpenCode). */
  touch(): void {
    this.lastActivityAt = Date.now();
  }

  async pidWatchLoop(): Promise<void> {
    while (!this.d.signal.aborted) {
      this.checkPid();
      await sleep(this.d.pidCheckMs, this.d.signal);
    }
  }

  /** Reports OpenCode's exit once (per pid, across relay restarts). */
  checkPid(): void {
    const pid = readPid(this.d.cfg.opencodePidFile) ?? this.pid;
    if (pid === undefined) return;
    if (pid !== this.pid) this.pid = pid;
    if (this.exited) return;
    const { alive, reason } = pidAlive(pid);
    if (alive) return;
    this.exited = true;
    this.d.idle.busy = false;
    this.d.onExit();
    log("warn", "opencode exited", { pid, reason });
    if (this.d.state.value.exitedPid === pid) return;
    this.d.state.update({ exitedPid: pid });
    this.d.emit(RELAY_EVENT.opencodeExited, { reason: reason ?? "exited", pid });
  }

  async heartbeatLoop(): Promise<void> {
    while (!this.d.signal.aborted) {
      try {
        await this.heartbeat();
      } catch (err) {
        if (err instanceof RunOverError) return this.d.onRunOver(err);
        if (!this.d.signal.aborted) log("warn", "heartbeat failed", { error: errMsg(err) });
      }
      await sleep(this.d.cfg.heartbeatMs, this.d.signal);
    }
  }

  private async heartbeat(): Promise<void> {
    this.checkPid();
    const size = fileSize(this.d.cfg.opencodeLogFile);
    if (size !== this.logSize) {
      this.logSize = size;
      this.lastActivityAt = Date.now();
    }
    const opencodeAlive = this.pid !== undefined && !this.exited && pidAlive(this.pid).alive && (await this.d.oc.healthy(3_000));
    if (this.d.signal.aborted) return;
    await this.d.backend.heartbeat({
      at: new Date().toISOString(),
      opencodeAlive,
      ...(this.lastActivityAt ? { lastActivityAt: new Date(this.lastActivityAt).toISOString() } : {}),
      busy: this.d.idle.busy || (this.d.idle.awaiting() && !this.exited),
      outboxPending: this.d.outboxPending(),
      relayVersion: RELAY_PROTOCOL_VERSION,
    });
  }
}
