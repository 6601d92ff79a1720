/**
 * The relay: wires OpenCode's event stream to the outbox and the backend, applies the backend's commands, decides
 * when the agent is idle and heartbeats. Independent loops, each forgiving of the others' failures:
 *
 *   startup    wait for OpenCode (log line + health), create/reuse the session, then start the loops below
 *   events     GET /event → filter → outbox (reconnects with backoff; confirms status after each reconnect)
 *   sender     outbox → POST events (one request in flight; whatever piled up meanwhile is the next batch)
 *   commands   long-poll commands → prompt / answer / abort / shutdown, each applied once, in order; a prompt
 *              is applied once OpenCode has registered the previous one (user-messages.ts); answers: asks.ts
 *   status     while a turn is open, GET /session/status every 5 s (idle-watch.ts)
 *   heartbeat  every DECKHAND_HEARTBEAT_MS; pid watch every second (liveness.ts)
 */
import { RELAY_EVENT, RELAY_PROTOCOL_VERSION, type RelayCommand } from "../protocol.ts";
import { BackendClient, RunOverError } from "./backend-client.ts";
import { Backoff, sleep } from "./backoff.ts";
import { truncateEventData } from "../truncate.ts";
import type { RelayConfig } from "./config.ts";
import { isAssistantMessageDone, sessionErrorMessage, sessionIdOf, shouldForward, TextTracker, type OpencodeEvent } from "./events.ts";
import { IdleWatch } from "./idle-watch.ts";
import { Liveness } from "./liveness.ts";
import { errMsg, log } from "./log.ts";
import { logSaysListening, OpencodeClient } from "./opencode.ts";
import { applyAnswer, settleAtOnce } from "./asks.ts";
import { Outbox } from "./outbox.ts";
import { sendEvents } from "./sender.ts";
import { StateStore } from "./state.ts";
import { UserMessageWatch } from "./user-messages.ts";

export interface RelayExit {
  code: number;
  reason: string;
}

export interface RelayTimings {
  statusPollMs: number;
  pidCheckMs: number;
  commandWaitMs: number;
  readyWarnMs: number;
  shutdownFlushMs: number;
  /** How long a prompt may take to show up as a user message before the next one is sent anyway. */
  registerWaitMs: number;
}

const DEFAULT_TIMINGS: RelayTimings = {
  statusPollMs: 5_000,
  pidCheckMs: 1_000,
  commandWaitMs: 25_000,
  readyWarnMs: 120_000,
  shutdownFlushMs: 5_000,
  registerWaitMs: 15_000,
};

export class Relay {
  private readonly outbox: Outbox;
  private readonly state: StateStore;
  private readonly backend: BackendClient;
  private readonly oc: OpencodeClient;
  private readonly t: RelayTimings;

  /** Stops every loop but the sender; the sender stops last so a shutdown can flush. */
  private readonly stop = new AbortController();
  private readonly stopSender = new AbortController();
  private finished = false;
  private resolveDone!: (e: RelayExit) => void;
  private readonly done = new Promise<RelayExit>((r) => (this.resolveDone = r));

  private sessionId?: string;
  private ready = false;
  private eventsConnected = false;
  private readonly eventsAbort = new AbortController();

  private readonly text = new TextTracker();
  private readonly userMessages = new UserMessageWatch();
  private readonly idle: IdleWatch;
  private readonly live: Liveness;

  constructor(
    private readonly cfg: RelayConfig,
    timings: Partial<RelayTimings> = {},
  ) {
    this.t = { ...DEFAULT_TIMINGS, ...timings };
    this.outbox = Outbox.open(cfg.stateDir);
    this.state = new StateStore(cfg.stateDir);
    this.backend = new BackendClient(cfg.backendUrl, cfg.runId, cfg.relayToken);
    this.oc = new OpencodeClient({ baseUrl: cfg.opencodeUrl, password: cfg.opencodePassword, directory: cfg.opencodeDirectory });
    const common = { state: this.state, oc: this.oc, emit: this.emit.bind(this), signal: this.stop.signal };
    this.idle = new IdleWatch({
      ...common,
      sessionId: () => this.sessionId,
      opencodeExited: () => this.opencodeExited,
      statusPollMs: this.t.statusPollMs,
    });
    this.live = new Liveness({
      ...common,
      cfg,
      backend: this.backend,
      idle: this.idle,
      outboxPending: () => this.outbox.pendingCount,
      pidCheckMs: this.t.pidCheckMs,
      onExit: () => this.eventsAbort.abort(),
      onRunOver: (err) => this.runOver(err),
    });
  }

  private get opencodeExited(): boolean {
    return this.live.exited;
  }

  /** Runs until the run is over (401), a shutdown command, or stopNow(). */
  run(): Promise<RelayExit> {
    const resumed = this.outbox.lastSeq > 0;
    log("info", "relay starting", {
      runId: this.cfg.runId,
      resumedAfterSeq: this.outbox.lastSeq,
      pendingEvents: this.outbox.pendingCount,
      lastAppliedSeq: this.state.value.lastAppliedSeq,
    });
    this.emit(RELAY_EVENT.started, { relayVersion: RELAY_PROTOCOL_VERSION, pid: process.pid, restarted: resumed });
    this.loop("sender", () => sendEvents(this.outbox, this.backend, this.stopSender.signal, (err) => this.runOver(err)));
    this.loop("heartbeat", () => this.live.heartbeatLoop());
    this.loop("pid-watch", () => this.live.pidWatchLoop());
    this.loop("startup", () => this.startup());
    this.loop("commands", () => this.commandLoop());
    return this.done;
  }

  /** Stops at once (signal): the outbox is fsync'd, unsent events stay on disk for the next relay. */
  stopNow(reason: string): Promise<RelayExit> {
    void this.finish(0, reason, false);
    return this.done;
  }

  /* ------------------------------------------------------------ events in */

  private emit(type: string, data: Record<string, unknown>): void {
    if (this.finished) return;
    const cut = truncateEventData(data, this.cfg.maxEventBytes);
    const ev = this.outbox.append(type, cut.data);
    log(cut.truncated ? "warn" : "debug", cut.truncated ? "event truncated to the size limit" : "event", { seq: ev.seq, type });
  }

  private async startup(): Promise<void> {
    const t0 = Date.now();
    let warned = false;
    for (;;) {
      if (this.stop.signal.aborted || this.opencodeExited) return;
      if (this.live.pid === undefined) this.live.checkPid();
      if (logSaysListening(this.cfg.opencodeLogFile) && (await this.oc.healthy(2_000))) break;
      if (!warned && Date.now() - t0 > this.t.readyWarnMs) {
        warned = true;
        this.emit(RELAY_EVENT.error, { message: `OpenCode not ready after ${Math.round(this.t.readyWarnMs / 1000)} s; still waiting` });
      }
      await sleep(200, this.stop.signal);
    }
    log("info", "opencode is up", { ms: Date.now() - t0, pid: this.live.pid });

    const backoff = new Backoff(200, 5_000);
    let reused = false;
    for (;;) {
      if (this.stop.signal.aborted || this.opencodeExited) return;
      try {
        const saved = this.state.value.sessionId;
        if (saved && (await this.oc.sessionExists(saved))) {
          this.sessionId = saved;
          reused = true;
        } else {
          this.sessionId = (await this.oc.createSession()).id;
          this.state.update({ sessionId: this.sessionId });
        }
        break;
      } catch (err) {
        log("warn", "session setup failed", { error: errMsg(err) });
        await sleep(backoff.next(), this.stop.signal);
      }
    }
    this.loop("events", () => this.eventLoop());
    // Prompts wait until the stream is connected, so the first events of a turn are not missed.
    for (let i = 0; i < 50 && !this.eventsConnected && !this.stop.signal.aborted; i++) await sleep(100, this.stop.signal);
    this.ready = true;
    this.emit(RELAY_EVENT.opencodeReady, { sessionId: this.sessionId, reused });
    log("info", "session ready", { sessionId: this.sessionId, reused });
    this.loop("status", () => this.idle.pollLoop());
    this.idle.schedule("startup");
  }

  private async eventLoop(): Promise<void> {
    const backoff = new Backoff();
    let connections = 0;
    while (!this.stop.signal.aborted && !this.opencodeExited) {
      try {
        let first = true;
        for await (const ev of this.oc.events(this.eventsAbort.signal)) {
          if (first) {
            first = false;
            connections++;
            this.eventsConnected = true;
            backoff.reset();
            if (connections > 1) {
              log("info", "event stream reconnected", { connections });
              this.idle.schedule("reconnect", true);
            }
          }
          this.onEvent(ev);
        }
        if (!this.stop.signal.aborted) log("warn", "event stream ended");
      } catch (err) {
        if (!this.stop.signal.aborted) log("warn", "event stream failed", { error: errMsg(err) });
      }
      if (this.stop.signal.aborted) return;
      this.live.checkPid();
      await sleep(backoff.next(), this.stop.signal);
    }
  }

  private onEvent(ev: OpencodeEvent): void {
    this.live.touch();
    const sid = sessionIdOf(ev);
    if (sid !== undefined && sid !== this.sessionId) return;
    this.text.observe(ev);
    this.userMessages.observe(ev, this.sessionId);
    if (!shouldForward(ev, this.sessionId)) return;
    const p = ev.properties ?? {};
    switch (ev.type) {
      case "session.status":
        this.idle.onStatus(p.status?.type);
        break;
      case "session.error":
        this.flushText();
        if (sid !== undefined) this.idle.onError(sessionErrorMessage(ev));
        break;
      case "session.idle":
        this.flushText();
        this.idle.busy = false;
        break;
      case "message.updated":
        if (isAssistantMessageDone(ev)) this.flushText(p.info.id);
        break;
    }
    this.emit(ev.type, p);
    if (ev.type === "session.idle" || (ev.type === "session.status" && !this.idle.busy)) this.idle.schedule(ev.type);
    // With people answering (DECKHAND_ASK_PEOPLE), asks wait for the backend's `answer` command (the backend gives
    // up on them after QUESTION_TIMEOUT_SECONDS); otherwise nothing may wait on a human: allow once / reject now.
    if (ev.type === "permission.asked" && typeof p.id === "string" && !this.cfg.askPeople) {
      void settleAtOnce(this.oc, "permission", p.id, this.stop.signal);
    }
    if (ev.type === "question.asked" && typeof p.id === "string" && !this.cfg.askPeople) {
      void settleAtOnce(this.oc, "question", p.id, this.stop.signal);
    }
  }

  /** Forwards the full text of parts whose final update never came (see TextTracker). */
  private flushText(messageId?: string): void {
    for (const data of this.text.flush(messageId)) this.emit("message.part.updated", data);
  }

  /* ------------------------------------------------------------ commands */

  private async commandLoop(): Promise<void> {
    const backoff = new Backoff();
    while (!this.stop.signal.aborted) {
      let commands: RelayCommand[];
      try {
        commands = await this.backend.commands(this.state.value.lastAppliedSeq, this.t.commandWaitMs, this.stop.signal);
        backoff.reset();
      } catch (err) {
        if (err instanceof RunOverError) return this.runOver(err);
        if (this.stop.signal.aborted) return;
        log("warn", "polling commands failed", { error: errMsg(err) });
        await sleep(backoff.next(), this.stop.signal);
        continue;
      }
      const todo = commands.filter((c) => c.seq > this.state.value.lastAppliedSeq).sort((a, b) => a.seq - b.seq);
      for (let i = 0; i < todo.length && !this.stop.signal.aborted; i++) {
        try {
          await this.apply(todo[i]!);
        } catch (err) {
          if (err instanceof RunOverError) return this.runOver(err);
          log("warn", "command failed; will retry", { seq: todo[i]!.seq, kind: todo[i]!.kind, error: errMsg(err) });
          const shutdown = todo.slice(i + 1).find((c) => c.kind === "shutdown");
          if (shutdown) return this.apply(shutdown); // a later shutdown must not wait behind an undeliverable prompt
          await sleep(backoff.next(), this.stop.signal);
          break; // poll again: the backend resends everything after lastAppliedSeq
        }
      }
    }
  }

  private async apply(cmd: RelayCommand): Promise<void> {
    log("info", "applying command", { seq: cmd.seq, kind: cmd.kind });
    switch (cmd.kind) {
      case "prompt": {
        if (!(await this.waitUntilReady())) throw new Error("OpenCode is not available");
        this.idle.beforeDelivery();
        const before = this.userMessages.count;
        await this.oc.promptAsync(this.sessionId!, cmd.text ?? "");
        this.state.update({ lastAppliedSeq: cmd.seq, deliveredSeq: cmd.seq, deliveredAt: Date.now() });
        this.emit(RELAY_EVENT.promptDelivered, { inputSeq: cmd.seq });
        await this.ackCommand(cmd.seq);
        // The next input waits until OpenCode has this one as a user message, so they keep their order.
        const t0 = Date.now();
        const registered = await this.userMessages.waitForMoreThan(before, this.t.registerWaitMs, this.stop.signal);
        if (!registered && !this.stop.signal.aborted) log("warn", "prompt not seen as a user message in time; going on", { seq: cmd.seq, waitedMs: Date.now() - t0 });
        else log("debug", "prompt registered", { seq: cmd.seq, ms: Date.now() - t0 });
        return;
      }
      case "abort": {
        if (this.sessionId && !this.opencodeExited) await this.oc.abort(this.sessionId);
        this.state.update({ lastAppliedSeq: cmd.seq });
        await this.ackCommand(cmd.seq);
        return;
      }
      case "answer": {
        if (cmd.answer && !this.opencodeExited) await applyAnswer(this.oc, cmd.answer, cmd.seq);
        this.state.update({ lastAppliedSeq: cmd.seq });
        await this.ackCommand(cmd.seq);
        return;
      }
      case "shutdown": {
        this.state.update({ lastAppliedSeq: cmd.seq });
        await this.ackCommand(cmd.seq);
        if (this.sessionId && !this.opencodeExited) {
          await this.oc.abort(this.sessionId).catch((err) => log("warn", "abort on shutdown failed", { error: errMsg(err) }));
        }
        await this.finish(0, "shutdown command", true);
        return;
      }
      default:
        log("warn", "unknown command kind; skipped", { seq: cmd.seq, kind: (cmd as RelayCommand).kind });
        this.state.update({ lastAppliedSeq: cmd.seq });
    }
  }

  private async ackCommand(seq: number): Promise<void> {
    for (let attempt = 1; attempt <= 3; attempt++) {
      try {
        return await this.backend.ackCommand(seq);
      } catch (err) {
        if (err instanceof RunOverError) throw err;
        log("warn", "command ack failed", { seq, attempt, error: errMsg(err) });
        await sleep(200 * attempt, this.stop.signal);
      }
    }
  }

  /** Resolves true once the session exists and the stream is on; false if OpenCode died or we are stopping. */
  private async waitUntilReady(): Promise<boolean> {
    while (!this.ready) {
      if (this.opencodeExited || this.stop.signal.aborted) return false;
      await sleep(100, this.stop.signal);
    }
    return !this.opencodeExited;
  }

  /* ------------------------------------------------------------ ending */

  private loop(name: string, fn: () => Promise<void>): void {
    fn().catch((err) => {
      log("error", "relay loop crashed", { loop: name, error: errMsg(err), stack: err instanceof Error ? err.stack : undefined });
      try {
        this.emit(RELAY_EVENT.error, { message: `${name}: ${errMsg(err)}` });
      } catch {
        /* the outbox itself may be what failed */
      }
      void this.finish(1, `${name} loop crashed`, true);
    });
  }

  private runOver(err: RunOverError): void {
    log("info", "run is over; exiting", { error: err.message });
    this.stopSender.abort(); // flush nothing more
    void this.finish(0, "run over (401)", false);
  }

  private async finish(code: number, reason: string, flush: boolean): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    this.stop.abort();
    this.eventsAbort.abort();
    if (flush) {
      const end = Date.now() + this.t.shutdownFlushMs;
      while (this.outbox.pendingCount > 0 && Date.now() < end && !this.stopSender.signal.aborted) await sleep(20);
    }
    this.stopSender.abort();
    try {
      this.outbox.close();
    } catch (err) {
      log("warn", "closing the outbox failed", { error: errMsg(err) });
    }
    log("info", "relay exiting", { code, reason, pending: this.outbox.pendingCount });
    this.resolveDone({ code, reason });
  }
}
