/**
 * The backend end of the relay protocol: checks the per-run token, stores events idempotently and in order,
 * records heartbeats, and hands the relay its commands (prompts) by long poll. HTTP-free: routes call it.
 */
import { and, asc, eq, gt, sql } from "drizzle-orm";
import type { Db } from "../../db/database.ts";
import { type Run, runEvents, runs } from "../../db/schema.ts";
import type { Logger } from "../../log/logger.ts";
import type { RunBus } from "../../runs/run-bus.ts";
import type { RunStore } from "../../runs/run-store.ts";
import { num, text } from "../../events/safe.ts";
import { tokenMatches } from "../../runs/tokens.ts";
import { advanceDigest, countEvents } from "../../events/digest-store.ts";
import { type CommandBatch, type RelayCommand, DEFAULT_MAX_EVENT_BYTES, type EventAck, type EventBatch, type Heartbeat, RELAY_EVENT } from "../protocol.ts";
import { truncateEventData } from "../truncate.ts";
import { recordRelayIngest } from "../../ops/metrics.ts";
import { RUN_ID, withSpan } from "../../ops/tracing.ts";
import { isLive } from "../../runs/model.ts";
import { idleOwesResult } from "../../runs/decide.ts";

/** A stored input as the relay's command: a prompt, or an answer (its text is the answer as JSON, see answers.ts). */
function toCommand(i: { seq: number; kind: string; text: string | null }): RelayCommand {
  if (i.kind === "answer") {
    try {
      return { seq: i.seq, kind: "answer", answer: JSON.parse(i.text ?? "") as RelayCommand["answer"] };
    } catch {
      return { seq: i.seq, kind: "answer" }; // unreadable: the relay skips it
    }
  }
  return { seq: i.seq, kind: "prompt", text: i.text ?? "" };
}
/** A batch may reach this far past the contiguous seq; further is refused (nothing is stored). */
export const MAX_SEQ_AHEAD = 10_000;

export interface EventLimits {
  maxEventBytes: number;
  maxRunEvents: number;
  maxRunEventBytes: number;
}
const DEFAULT_LIMITS: EventLimits = { maxEventBytes: DEFAULT_MAX_EVENT_BYTES, maxRunEvents: 50_000, maxRunEventBytes: 100 * 1024 * 1024 };

/** A batch the receiver refuses as a whole (the route answers 400 with the message). */
export class RelayBatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RelayBatchError";
  }
}

export class RelayAuthError extends Error {
  constructor() {
    super("invalid relay token");
    this.name = "RelayAuthError";
  }
}

export class RelayReceiver {
  constructor(
    private readonly db: Db,
    private readonly store: RunStore,
    private readonly bus: RunBus,
    private readonly log: Logger,
    private readonly limits: EventLimits = DEFAULT_LIMITS,
  ) {}

  /** The run, if `token` is its relay token and the run still has a live sandbox; otherwise RelayAuthError. */
  async authenticate(runId: string, token: string | undefined): Promise<Run> {
    if (!token) throw new RelayAuthError();
    const run = await this.store.get(runId);
    if (!run || !isLive(run.status) || !tokenMatches(token, run.relayTokenHash)) throw new RelayAuthError();
    return run;
  }

  async ingest(run: Run, batch: EventBatch): Promise<EventAck> {
    recordRelayIngest(batch.events.length);
    return await withSpan("relay.ingest", { [RUN_ID]: run.id, "deckhand.events": batch.events.length }, () => this.ingestBatch(run, batch));
  }

  private async ingestBatch(run: Run, batch: EventBatch): Promise<EventAck> {
    const ahead = run.lastEventSeq + MAX_SEQ_AHEAD;
    const far = batch.events.find((e) => e.seq > ahead);
    if (far) throw new RelayBatchError(`event seq ${far.seq} is too far ahead of the stored events (last contiguous ${run.lastEventSeq}; at most ${MAX_SEQ_AHEAD} ahead)`);
    // Events already stored (seq <= contiguous) are skipped; the rest are cut to the size limit, with a marker.
    const rows = batch.events
      .filter((e) => e.seq > run.lastEventSeq)
      .map((e) => {
        const cut = truncateEventData(e.data ?? {}, this.limits.maxEventBytes);
        return { runId: run.id, seq: e.seq, type: e.type, at: new Date(e.at), data: cut.data, bytes: Buffer.byteLength(JSON.stringify(cut.data)) + e.type.length };
      });
    // The rows this batch really stored (a seq stored before keeps its first copy): folded without a read-back.
    let storedRows: typeof rows = [];
    if (rows.length) {
      // One JSON parameter for the whole batch (jsonb_to_recordset), not five bound values per event.
      const payload = JSON.stringify(rows.map((r) => ({ seq: r.seq, type: r.type, at: r.at.toISOString(), data: r.data })));
      const res = (await this.db.execute(sql`
        insert into run_events (run_id, seq, type, at, data)
        select ${run.id}, x.seq, x.type, x.at, x.data
        from jsonb_to_recordset(${payload}::jsonb) as x(seq integer, type text, at timestamptz, data jsonb)
        on conflict do nothing
        returning seq`)) as unknown as { seq: number }[] | { rows: { seq: number }[] };
      const stored = (Array.isArray(res) ? res : res.rows).map((r) => ({ seq: Number(r.seq) }));
      if (stored.length) {
        const got = new Set(stored.map((r) => r.seq));
        storedRows = rows.filter((r) => got.has(r.seq));
        const bytes = rows.reduce((n, r) => n + (got.has(r.seq) ? r.bytes : 0), 0);
        const totals = await countEvents(this.db, run.id, stored.length, bytes);
        if (totals.eventCount > this.limits.maxRunEvents || totals.eventBytes > this.limits.maxRunEventBytes) {
          const what = totals.eventCount > this.limits.maxRunEvents ? `more than ${this.limits.maxRunEvents} events` : `more than ${Math.round(this.limits.maxRunEventBytes / 1048576)} MB of events`;
          const reason = `The agent produced ${what}; the run was stopped (limit MAX_RUN_${totals.eventCount > this.limits.maxRunEvents ? "EVENTS" : "EVENT_BYTES"})`;
          this.log.warn({ runId: run.id, ...totals }, "run over its event limit; failing it");
          await this.store.transition(run.id, { type: "fail", code: "event_limit", reason });
        }
      }
    }
    const ackedSeq = await this.advanceContiguous(run.id);
    await advanceDigest(this.db, run.id, ackedSeq, storedRows);
    // Effects are idempotent and applied for every event of the batch, so a batch redelivered after a crash
    // (stored, but never acknowledged) still has its effects.
    for (const e of batch.events) await this.applyEffect(run, e.type, e.data ?? {});
    await this.bus.changed(run.id);
    return { ackedSeq };
  }

  /** Move runs.last_event_seq to the highest seq with no gap before it (reads at most MAX_SEQ_AHEAD rows). */
  private async advanceContiguous(runId: string): Promise<number> {
    const [row] = await this.db.select({ last: runs.lastEventSeq }).from(runs).where(eq(runs.id, runId));
    let last = row?.last ?? 0;
    const later = await this.db
      .select({ seq: runEvents.seq })
      .from(runEvents)
      .where(and(eq(runEvents.runId, runId), gt(runEvents.seq, last)))
      .orderBy(asc(runEvents.seq))
      .limit(MAX_SEQ_AHEAD);
    for (const { seq } of later) {
      if (seq !== last + 1) break;
      last = seq;
    }
    await this.store.recordEventsStored(runId, last);
    return last;
  }

  private async applyEffect(run: Run, type: string, data: Record<string, any>) {
    switch (type) {
      case RELAY_EVENT.opencodeReady: {
        await this.store.recordAgentReady(run.id, text(data.sessionId));
        const fresh = await this.store.get(run.id);
        if (fresh?.status === "provisioning") {
          await this.store.phase(run.id, { phase: "opencode_ready" });
          await this.store.transition(run.id, { type: "sandbox_ready" });
          this.log.info({ runId: run.id }, "agent ready; run is running");
        }
        break;
      }
      case RELAY_EVENT.promptDelivered: {
        const seq = num(data.inputSeq);
        await this.store.markInputDelivered(run.id, seq);
        if (seq === 1) {
          const fresh = await this.store.get(run.id);
          if (fresh && !fresh.phases.some((p) => p.phase === "prompt_delivered")) await this.store.phase(run.id, { phase: "prompt_delivered" });
        }
        break;
      }
      case RELAY_EVENT.agentIdle: {
        const seq = num(data.inputSeq);
        const lastPrompt = await this.store.lastPromptSeq(run.id);
        if (idleOwesResult(seq, lastPrompt)) {
          if (await this.store.recordIdle(run.id, seq)) await this.bus.wakeReconciler();
        }
        break;
      }
      case RELAY_EVENT.opencodeExited:
        await this.store.recordAgentGone(run.id);
        await this.store.transition(run.id, {
          type: "fail",
          code: "agent_died",
          reason: `The agent process (OpenCode) stopped unexpectedly${text(data.reason) ? ` (${text(data.reason).slice(0, 300)})` : ""}`,
        });
        break;
    }
  }

  async heartbeat(run: Run, hb: Heartbeat): Promise<void> {
    // Liveness only moves forward while OpenCode is alive and answering.
    await this.store.recordHeartbeat(run.id, hb.opencodeAlive);
  }

  /** Prompts after `after`, waiting up to `waitMs` for one to appear. */
  async commands(run: Run, after: number, waitMs: number, signal?: AbortSignal): Promise<CommandBatch> {
    const deadline = Date.now() + Math.min(Math.max(waitMs, 0), 30_000);
    for (;;) {
      const inputs = await this.store.relayInputsAfter(run.id, after);
      if (inputs.length) return { commands: inputs.map(toCommand) };
      const current = await this.store.get(run.id);
      if (!current || !isLive(current.status)) return { commands: [{ seq: after, kind: "shutdown" }] };
      const left = deadline - Date.now();
      if (left <= 0 || signal?.aborted) return { commands: [] };
      await this.bus.waitForRun(run.id, Math.min(left, 5_000), signal);
      if (signal?.aborted) return { commands: [] }; // the relay hung up (or the server is closing)
    }
  }

  async ack(run: Run, seq: number): Promise<void> {
    await this.store.markInputDelivered(run.id, seq);
  }
}
