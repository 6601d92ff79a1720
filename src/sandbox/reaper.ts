/**
 * The sandbox reaper: at start-up and then periodically, it looks at every Deckhand sandbox the provider knows
 * (running and paused) and its run in the database:
 *   - run finished (closed / failed / cancelled), unknown, or the sandbox is left over from an earlier attempt
 *     → kill it, and log which and why;
 *   - run alive (provisioning / running / idle) and the sandbox running → extend its lifetime (providers with
 *     lifetimes: E2B), so the backstop only fires for sandboxes nobody looks after any more.
 * Provider-independent: works for the local provider too (which has no lifetimes).
 * Several server processes may each run one: kills are idempotent.
 */
import type { Run } from "../db/schema.ts";
import { type Logger, runLog } from "../log/logger.ts";
import { isTerminal } from "../runs/model.ts";
import { RUN_LABEL, type SandboxInfo, type SandboxProvider } from "./provider.ts";

export type SandboxVerdict = { action: "keep" } | { action: "extend" } | { action: "kill"; reason: string };

/** What to do with one sandbox, given its run (null: not in the database). Pure. */
export function judgeSandbox(sb: SandboxInfo, run: Pick<Run, "id" | "status" | "sandboxId"> | null): SandboxVerdict {
  const runId = sb.labels[RUN_LABEL];
  if (!runId) return { action: "kill", reason: "it carries no run id" };
  if (!run) return { action: "kill", reason: `its run ${runId} is unknown` };
  if (isTerminal(run.status)) return { action: "kill", reason: `its run is ${run.status}` };
  // While provisioning, sandboxId is null until the new sandbox is recorded: keep anything then.
  if (run.sandboxId && run.sandboxId !== sb.id) return { action: "kill", reason: `it is left over from an earlier attempt (the run uses ${run.sandboxId})` };
  if (run.status === "queued") return { action: "keep" };
  return sb.state === "running" ? { action: "extend" } : { action: "keep" };
}

export interface ReaperDeps {
  provider: SandboxProvider;
  runs: { get(id: string): Promise<Run | null> };
  log: Logger;
  intervalMs: number;
  /** How long to extend a live sandbox's lifetime by (providers with lifetimes); 0: never extend. */
  extendByMs: number;
}

export interface SweepReport {
  killed: { id: string; runId?: string; reason: string }[];
  extended: string[];
  kept: string[];
}

export class SandboxReaper {
  private timer: NodeJS.Timeout | null = null;
  private current: Promise<SweepReport> | null = null;
  private stopped = false;

  constructor(private readonly deps: ReaperDeps) {}

  start(): void {
    this.stopped = false;
    void this.sweepLogged();
    this.timer = setInterval(() => void this.sweepLogged(), this.deps.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.current?.catch(() => {});
  }

  private async sweepLogged(): Promise<void> {
    try {
      await this.sweep();
    } catch (e) {
      this.deps.log.error({ err: (e as Error).message, provider: this.deps.provider.name }, "sandbox reaper: could not list sandboxes");
    }
  }

  /** One pass; concurrent calls share it. */
  sweep(): Promise<SweepReport> {
    this.current ??= this.doSweep().finally(() => {
      this.current = null;
    });
    return this.current;
  }

  private async doSweep(): Promise<SweepReport> {
    const { provider, runs, log } = this.deps;
    const report: SweepReport = { killed: [], extended: [], kept: [] };
    for (const sb of await provider.list()) {
      if (this.stopped) break;
      const runId = sb.labels[RUN_LABEL];
      try {
        const run = runId ? await runs.get(runId) : null;
        const verdict = judgeSandbox(sb, run);
        if (verdict.action === "kill") {
          if (await provider.destroy(sb.id)) {
            report.killed.push({ id: sb.id, runId, reason: verdict.reason });
            (runId ? runLog(log, runId) : log).warn({ sandboxId: sb.id, provider: provider.name, reason: verdict.reason }, `sandbox reaper: killed a sandbox because ${verdict.reason}`);
          }
        } else if (verdict.action === "extend" && this.deps.extendByMs > 0 && provider.extend) {
          // By id: no reconnect, so a sandbox paused in the meantime stays paused.
          await provider.extend(sb.id, this.deps.extendByMs);
          report.extended.push(sb.id);
        } else report.kept.push(sb.id);
      } catch (e) {
        (runId ? runLog(log, runId) : log).warn({ sandboxId: sb.id, err: (e as Error).message }, "sandbox reaper: could not handle a sandbox");
      }
    }
    if (report.killed.length || report.extended.length) log.info({ killed: report.killed.length, extended: report.extended.length, kept: report.kept.length }, "sandbox reaper swept");
    return report;
  }
}

/** The reaper as configured: every SANDBOX_REAPER_INTERVAL_SECONDS, and often enough to extend E2B lifetimes in time. */
export function createReaper(
  config: { SANDBOX_REAPER_INTERVAL_SECONDS: number; E2B_SANDBOX_TIMEOUT_SECONDS: number },
  provider: SandboxProvider,
  runs: ReaperDeps["runs"],
  log: Logger,
): SandboxReaper {
  const lifetimeMs = provider.name === "e2b" ? config.E2B_SANDBOX_TIMEOUT_SECONDS * 1000 : 0;
  const every = config.SANDBOX_REAPER_INTERVAL_SECONDS * 1000;
  return new SandboxReaper({
    provider,
    runs,
    log: log.child({ component: "sandbox-reaper" }),
    intervalMs: lifetimeMs ? Math.min(every, Math.floor(lifetimeMs / 3)) : every,
    extendByMs: lifetimeMs,
  });
}
