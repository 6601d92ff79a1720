/**
 * Wake-ups across server processes, through Postgres LISTEN/NOTIFY (works on PGlite too):
 * - `run` (payload: run id): something about a run changed; waiters and notifiers re-read it.
 * - `reconcile`: there may be work for the reconciler (a new run, an input, an idle agent).
 */
import { EventEmitter } from "node:events";
import type { Database } from "../db/database.ts";

const RUN_CHANNEL = "deckhand_run";
const RECONCILE_CHANNEL = "deckhand_reconcile";

export class RunBus {
  private readonly emitter = new EventEmitter();
  private unsubs: (() => Promise<void>)[] = [];

  constructor(private readonly database: Database) {
    this.emitter.setMaxListeners(0);
  }

  async start(): Promise<void> {
    this.unsubs.push(await this.database.listen(RUN_CHANNEL, (id) => this.emitter.emit("run", id)));
    this.unsubs.push(await this.database.listen(RECONCILE_CHANNEL, () => this.emitter.emit("reconcile")));
  }

  async stop(): Promise<void> {
    for (const u of this.unsubs.splice(0)) await u();
  }

  /** Tell every process that this run changed. */
  async changed(runId: string): Promise<void> {
    this.emitter.emit("run", runId);
    await this.database.notify(RUN_CHANNEL, runId).catch(() => {});
  }

  async wakeReconciler(): Promise<void> {
    this.emitter.emit("reconcile");
    await this.database.notify(RECONCILE_CHANNEL, "").catch(() => {});
  }

  onRun(fn: (runId: string) => void): () => void {
    this.emitter.on("run", fn);
    return () => this.emitter.off("run", fn);
  }

  onReconcile(fn: () => void): () => void {
    this.emitter.on("reconcile", fn);
    return () => this.emitter.off("reconcile", fn);
  }

  /** Resolve when `runId` changes or after `ms`. */
  waitForRun(runId: string, ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        off();
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const off = this.onRun((id) => id === runId && done());
      const timer = setTimeout(done, ms);
      signal?.addEventListener("abort", done);
    });
  }
}
