/** Runs, their inputs and events in the database. Status changes go through the pure state machine. */
import { and, asc, desc, eq, gt, inArray, isNotNull, isNull, max, ne, or, sql } from "drizzle-orm";
import type { Db } from "../db/database.ts";
import { type ConversationLink, linkConversations } from "../intake/conversations.ts";
import { type NewRun, type Run, runEvents, runInputs, runs } from "../db/schema.ts";
import { leaseHeld, RunLeases, type UnderLease } from "./lease.ts";
import type { RunBus } from "./run-bus.ts";
import { isTerminal, LIVE_STATUSES, type RunStatus, type SourceRef, TERMINAL_STATUSES } from "./model.ts";
import { columnsFor, type PhaseRecord, type RunChange } from "./run-changes.ts";
import { transition } from "./state-machine.ts";
import { guardBranch } from "./branch-guard.ts";
import { branchName, newRunId, randomToken, titleFrom } from "./tokens.ts";

export interface CreateRunInput {
  repo: string;
  ref?: string | null;
  prompt: string;
  source: string;
  sourceRef?: SourceRef;
  createdBy?: string | null;
  /** Branch to work on (e.g. Linear's suggested branch name); default `deckhand/<slug>`. */
  branch?: string;
  title?: string;
  /** Upstream model name (one of MODELS); null: the configured default. */
  model?: string | null;
  /** USD added to RUN_BUDGET_USD from the start (`budget=+5` in the task). */
  budgetExtraUsd?: number;
  /** The surface conversations (thread, session, issue) this run becomes the run of, in the same transaction. */
  conversation?: ConversationLink;
}

export interface ListRunsFilter {
  limit?: number;
  status?: string;
  repo?: string;
  source?: string;
}

export type { Delivery, PhaseRecord, RunChange } from "./run-changes.ts";

/** Model usage the gateway measured for one call. */
export interface UsageAdded {
  input: number;
  output: number;
  cacheRead: number;
  cacheWrite: number;
  costMicros: number;
}

/**
 * Add one model call's usage to the run's totals, and (`ledger`) the gateway's usage ledger row in the same
 * statement: both land, or neither.
 */
export async function addUsage(db: Db, runId: string, u: UsageAdded, ledger?: Parameters<Db["with"]>[0]): Promise<Run | null> {
  // With the ledger row's insert as a CTE, both land in one statement (one round trip on the model's hot path).
  const q = ledger ? db.with(ledger).update(runs) : db.update(runs);
  const [row] = await q
    .set({
      usageInput: sql`${runs.usageInput} + ${u.input}`,
      usageOutput: sql`${runs.usageOutput} + ${u.output}`,
      usageCacheRead: sql`${runs.usageCacheRead} + ${u.cacheRead}`,
      usageCacheWrite: sql`${runs.usageCacheWrite} + ${u.cacheWrite}`,
      usageCostMicros: sql`${runs.usageCostMicros} + ${u.costMicros}`,
      modelRequests: sql`${runs.modelRequests} + 1`,
    })
    .where(eq(runs.id, runId))
    .returning();
  return row ?? null;
}

export class RunStore {
  /** Leases on runs (the lease SQL lives in lease.ts). */
  readonly leases: RunLeases;

  constructor(
    readonly db: Db,
    private readonly bus: RunBus,
  ) {
    this.leases = new RunLeases(db);
  }

  /** Create a run and its first prompt input, atomically. */
  async create(input: CreateRunInput): Promise<Run> {
    const id = newRunId();
    const row: NewRun = {
      id,
      status: "queued",
      repo: input.repo,
      ref: input.ref ?? null,
      prompt: input.prompt,
      title: input.title ?? titleFrom(input.prompt),
      // Never main/master/release/* or the ref the run starts from, whatever name was suggested.
      branch: input.branch ? guardBranch(input.branch, id, input.ref) : branchName(input.prompt, id),
      source: input.source,
      sourceRef: (input.sourceRef ?? {}) as Record<string, unknown>,
      createdBy: input.createdBy ?? null,
      model: input.model ?? null,
      budgetExtraUsd: input.budgetExtraUsd ?? 0,
      pageToken: randomToken(24),
      phases: [{ phase: "queued", at: new Date().toISOString() }],
    };
    const run = await this.db.transaction(async (tx) => {
      const [created] = await tx.insert(runs).values(row).returning();
      await tx.insert(runInputs).values({ runId: id, seq: 1, kind: "prompt", text: input.prompt, author: input.createdBy ?? null, source: input.source });
      if (input.conversation) await linkConversations(tx as unknown as Db, input.conversation, id);
      return created!;
    });
    await this.bus.changed(id);
    await this.bus.wakeReconciler();
    return run;
  }

  async get(id: string): Promise<Run | null> {
    const [r] = await this.db.select().from(runs).where(eq(runs.id, id));
    return r ?? null;
  }

  async getByPageToken(token: string): Promise<Run | null> {
    const [r] = await this.db.select().from(runs).where(eq(runs.pageToken, token));
    return r ?? null;
  }

  async list(f: ListRunsFilter = {}): Promise<Run[]> {
    const conds = [];
    if (f.status) conds.push(eq(runs.status, f.status));
    if (f.repo) conds.push(eq(runs.repo, f.repo));
    if (f.source) conds.push(eq(runs.source, f.source));
    return this.db
      .select()
      .from(runs)
      .where(conds.length ? and(...conds) : undefined)
      .orderBy(desc(runs.createdAt))
      .limit(Math.min(f.limit ?? 50, 500));
  }

  /** Queue a follow-up prompt, a person's answer to a question (text: the relay's answer as JSON) or a stop. Sequence numbers are per run and gap-free. */
  async addInput(runId: string, input: { kind: "prompt" | "stop" | "answer"; text?: string; author?: string | null; source: string }) {
    for (let attempt = 0; ; attempt++) {
      try {
        const [{ m }] = (await this.db.select({ m: max(runInputs.seq) }).from(runInputs).where(eq(runInputs.runId, runId))) as [{ m: number | null }];
        const [row] = await this.db
          .insert(runInputs)
          .values({ runId, seq: (m ?? 0) + 1, kind: input.kind, text: input.text ?? null, author: input.author ?? null, source: input.source })
          .returning();
        await this.bus.changed(runId);
        await this.bus.wakeReconciler();
        return row!;
      } catch (e) {
        if (attempt < 5 && /duplicate key|unique/i.test(String((e as Error).message) + String((e as { cause?: Error }).cause?.message))) continue;
        throw e;
      }
    }
  }

  /** Inputs the relay applies (prompts and answers) after `afterSeq`, in order. */
  async relayInputsAfter(runId: string, afterSeq: number) {
    return this.db
      .select()
      .from(runInputs)
      .where(and(eq(runInputs.runId, runId), gt(runInputs.seq, afterSeq), inArray(runInputs.kind, ["prompt", "answer"])))
      .orderBy(asc(runInputs.seq));
  }

  /** A run's inputs in order; only those of one kind when `kind` is given (answers, read often, are few). */
  async inputs(runId: string, kind?: "prompt" | "stop" | "answer") {
    const where = kind ? and(eq(runInputs.runId, runId), eq(runInputs.kind, kind)) : eq(runInputs.runId, runId);
    return this.db.select().from(runInputs).where(where).orderBy(asc(runInputs.seq));
  }

  /** The latest `limit` prompts of a run not sent from `source` (its own surface), oldest first. */
  async foreignPrompts(runId: string, source: string, limit: number) {
    const rows = await this.db
      .select({ seq: runInputs.seq, text: runInputs.text, author: runInputs.author, source: runInputs.source })
      .from(runInputs)
      .where(and(eq(runInputs.runId, runId), eq(runInputs.kind, "prompt"), ne(runInputs.source, source)))
      .orderBy(desc(runInputs.seq))
      .limit(limit);
    return rows.reverse().map((r) => ({ ...r, text: r.text ?? "" }));
  }

  async lastPromptSeq(runId: string): Promise<number> {
    const [{ m }] = (await this.db
      .select({ m: max(runInputs.seq) })
      .from(runInputs)
      .where(and(eq(runInputs.runId, runId), eq(runInputs.kind, "prompt")))) as [{ m: number | null }];
    return m ?? 0;
  }

  async markInputDelivered(runId: string, seq: number) {
    await this.db
      .update(runInputs)
      .set({ deliveredAt: new Date() })
      .where(and(eq(runInputs.runId, runId), eq(runInputs.seq, seq), sql`${runInputs.deliveredAt} is null`));
  }

  async events(runId: string, afterSeq = 0, limit = 1000) {
    return this.db
      .select()
      .from(runEvents)
      .where(and(eq(runEvents.runId, runId), gt(runEvents.seq, afterSeq)))
      .orderBy(asc(runEvents.seq))
      .limit(limit);
  }

  /**
   * Apply a lifecycle transition, optimistically: it only lands if the run is still in the status it was read in
   * (and, under a lease, while the writer still holds it). Each transition writes its own columns and no others.
   * Returns the updated run, or null when the transition is not allowed (or another process moved it first).
   */
  async transition(runId: string, change: RunChange, opts: UnderLease = {}): Promise<Run | null> {
    for (let i = 0; i < 3; i++) {
      const run = await this.get(runId);
      if (!run) return null;
      const out = transition(run.status as RunStatus, change);
      if (!out.ok) return null;
      const now = new Date();
      const terminal = isTerminal(out.to);
      const [updated] = await this.db
        .update(runs)
        .set({
          ...columnsFor(change, run, now),
          status: out.to,
          statusReason: out.reason ?? (terminal ? run.statusReason : null),
          failureCode: out.code ?? (terminal ? run.failureCode : null),
          statusChangedAt: now,
          updatedAt: now,
          phases: sql`${runs.phases} || ${JSON.stringify([{ phase: out.to, at: now.toISOString(), ...(out.reason ? { reason: out.reason } : {}) }])}::jsonb`,
          ...(terminal ? { finishedAt: now, relayTokenHash: null } : {}),
          // A new status starts its own retries.
          retryAt: null,
          retryAttempts: 0,
          lastRetryError: null,
        })
        .where(and(eq(runs.id, runId), eq(runs.status, run.status), leaseHeld(opts)))
        .returning();
      if (updated) {
        await this.bus.changed(runId);
        await this.bus.wakeReconciler();
        return updated;
      }
    }
    return null;
  }

  /** Record a sub-phase (sandbox created, repo cloned, ...) with its time and the one column it sets. False: the lease was lost. */
  async phase(runId: string, p: PhaseRecord, opts: UnderLease = {}): Promise<boolean> {
    const now = new Date();
    const { phase, ...cols } = p;
    const rows = await this.db
      .update(runs)
      .set({ ...cols, updatedAt: now, phases: sql`${runs.phases} || ${JSON.stringify([{ phase, at: now.toISOString() }])}::jsonb` })
      .where(and(eq(runs.id, runId), leaseHeld(opts)))
      .returning({ id: runs.id });
    if (rows.length) await this.bus.changed(runId);
    return rows.length > 0;
  }

  /** A provisioning attempt starts a sandbox: its fresh tokens (hashed) and where it lives. False: the lease was lost. */
  async recordSandboxStarting(
    runId: string,
    s: { relayTokenHash: string; modelTokenHash: string; sandboxProvider: string; sandboxHost: string | null },
    opts: UnderLease,
  ): Promise<boolean> {
    const rows = await this.db
      .update(runs)
      .set({ ...s, sandboxId: null, sandboxDestroyedAt: null, updatedAt: new Date() })
      .where(and(eq(runs.id, runId), leaseHeld(opts)))
      .returning({ id: runs.id });
    return rows.length > 0;
  }

  /** A suspended sandbox's agent starts again (resume): fresh tokens (hashed), the old ones dead. False: the lease was lost. */
  async recordAgentRestarting(runId: string, s: { relayTokenHash: string; modelTokenHash: string }, opts: UnderLease = {}): Promise<boolean> {
    const rows = await this.db
      .update(runs)
      .set({ ...s, updatedAt: new Date() })
      .where(and(eq(runs.id, runId), leaseHeld(opts)))
      .returning({ id: runs.id });
    return rows.length > 0;
  }

  /**
   * A reconciler action failed: record when to try again (its own column, not the lease), under the lease.
   * False when the lease was lost (another process acts on the run now).
   */
  async scheduleRetry(runId: string, retry: { at: Date; attempts: number; error: string }, opts: UnderLease): Promise<boolean> {
    const rows = await this.db
      .update(runs)
      .set({ retryAt: retry.at, retryAttempts: retry.attempts, lastRetryError: retry.error.slice(0, 500), updatedAt: new Date() })
      .where(and(eq(runs.id, runId), leaseHeld(opts)))
      .returning({ id: runs.id });
    return rows.length > 0;
  }

  /** The run's sandbox is gone (destroyed, or unreachable on a host that stopped), under the lease. */
  async recordSandboxReleased(runId: string, opts: UnderLease): Promise<boolean> {
    const rows = await this.db
      .update(runs)
      .set({ sandboxDestroyedAt: new Date(), updatedAt: new Date() })
      .where(and(eq(runs.id, runId), leaseHeld(opts)))
      .returning({ id: runs.id });
    return rows.length > 0;
  }

  // ---- what the relay reports (the relay token is the writer's right; no lease) ----------------------------------

  /** OpenCode is up in the sandbox with this session. */
  async recordAgentReady(runId: string, sessionId: string): Promise<void> {
    await this.db
      .update(runs)
      .set({ opencodeSessionId: sessionId.slice(0, 200), opencodeAlive: true, lastHeartbeatAt: new Date(), updatedAt: new Date() })
      .where(eq(runs.id, runId));
  }

  /** OpenCode stopped (exited, or the heartbeat says it does not answer). */
  async recordAgentGone(runId: string): Promise<void> {
    await this.db.update(runs).set({ opencodeAlive: false, updatedAt: new Date() }).where(eq(runs.id, runId));
  }

  /** A heartbeat: liveness only moves forward while OpenCode is alive and answering. */
  async recordHeartbeat(runId: string, opencodeAlive: boolean): Promise<void> {
    if (!opencodeAlive) return this.recordAgentGone(runId);
    await this.db.update(runs).set({ lastHeartbeatAt: new Date(), opencodeAlive: true }).where(eq(runs.id, runId));
  }

  /** Events up to `lastSeq` are stored without a gap. */
  async recordEventsStored(runId: string, lastSeq: number): Promise<void> {
    await this.db
      .update(runs)
      .set({ lastEventSeq: sql`greatest(${runs.lastEventSeq}, ${lastSeq})`, lastActivityAt: new Date() })
      .where(eq(runs.id, runId));
  }

  /** The agent is idle having seen prompts up to `inputSeq`: a result is owed (unless already delivered for it). */
  async recordIdle(runId: string, inputSeq: number): Promise<boolean> {
    const rows = await this.db
      .update(runs)
      .set({ idleInputSeq: sql`greatest(coalesce(${runs.idleInputSeq}, 0), ${inputSeq})` })
      .where(and(eq(runs.id, runId), gt(sql`${inputSeq}`, runs.deliveredInputSeq)))
      .returning({ id: runs.id });
    return rows.length > 0;
  }

  // ---- what people change -----------------------------------------------------------------------------------------

  /** A new secret for the run page link; the old link stops working. Returns the new token. */
  async rotatePageToken(runId: string): Promise<string> {
    const pageToken = randomToken(24);
    await this.db.update(runs).set({ pageToken, updatedAt: new Date() }).where(eq(runs.id, runId));
    return pageToken;
  }

  /** `model=` in a follow-up: the upstream model from now on (null: the configured default). */
  async setModel(runId: string, model: string | null): Promise<void> {
    await this.db.update(runs).set({ model, updatedAt: new Date() }).where(eq(runs.id, runId));
  }

  /** `budget=+N` in a follow-up: raise the run's budget by `usd` (added in the database, so raises never overwrite each other). */
  async raiseBudget(runId: string, usd: number): Promise<void> {
    await this.db
      .update(runs)
      .set({ budgetExtraUsd: sql`${runs.budgetExtraUsd} + ${usd}`, updatedAt: new Date() })
      .where(eq(runs.id, runId));
  }

  /** Runs the reconciler looks at: live ones, and finished ones whose sandbox is not yet released; with their last prompt seq. */
  async reconcileCandidates(): Promise<{ runs: Run[]; lastPromptSeq: Map<string, number> }> {
    const candidates = await this.db
      .select()
      .from(runs)
      .where(
        or(
          inArray(runs.status, [...LIVE_STATUSES]),
          and(inArray(runs.status, [...TERMINAL_STATUSES]), isNotNull(runs.sandboxProvider), isNull(runs.sandboxDestroyedAt)),
        ),
      );
    if (!candidates.length) return { runs: [], lastPromptSeq: new Map() };
    const last = await this.db
      .select({ runId: runInputs.runId, seq: sql<number>`max(${runInputs.seq})` })
      .from(runInputs)
      .where(and(eq(runInputs.kind, "prompt"), inArray(runInputs.runId, candidates.map((r) => r.id))))
      .groupBy(runInputs.runId);
    return { runs: candidates, lastPromptSeq: new Map(last.map((r) => [r.runId, Number(r.seq)])) };
  }

  async byStatus(statuses: string[]): Promise<Run[]> {
    return this.db.select().from(runs).where(inArray(runs.status, statuses));
  }
}
