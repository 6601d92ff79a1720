/**
 * Caps on live page connections (server-sent events): per run and in total. Each open stream holds a socket and
 * re-renders on changes, so a few hundred viewers of one run must not starve the others. Not I/O: a counter.
 */
export class LiveLimits {
  private total = 0;
  private readonly perRun = new Map<string, number>();

  constructor(
    readonly maxPerRun: number,
    readonly maxTotal: number,
  ) {}

  /** Take a slot for `runId` (null: not about one run, e.g. the runs list); a release function, or why not. */
  acquire(runId: string | null): { release: () => void } | { refused: string } {
    if (this.total >= this.maxTotal) return { refused: `too many live connections (${this.maxTotal}); reload later` };
    const n = runId === null ? 0 : (this.perRun.get(runId) ?? 0);
    if (runId !== null && n >= this.maxPerRun) return { refused: `too many live connections to this run (${this.maxPerRun}); reload later` };
    this.total++;
    if (runId !== null) this.perRun.set(runId, n + 1);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.total--;
        if (runId === null) return;
        const left = (this.perRun.get(runId) ?? 1) - 1;
        if (left > 0) this.perRun.set(runId, left);
        else this.perRun.delete(runId);
      },
    };
  }

  get open(): number {
    return this.total;
  }
}
