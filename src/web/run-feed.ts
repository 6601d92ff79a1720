/**
 * A run page's live feed: the run's regions (head, result, plan, phases, timeline items) rendered once per change
 * of the run — its row, its digest's last seq, the heartbeat turning stale — and sent to all of its viewers. Each
 * viewer gets what changed since its last frame; the diff section only when the diff changed, drawn once per way
 * of showing it (base, format, full). Link viewers (`/r/<token>`) are told "gone" once the link is rotated.
 */
import type { Run } from "../db/schema.ts";
import { safeEqual } from "../runs/tokens.ts";
import { isTerminal } from "../runs/state-machine.ts";
import { diffKey, type DiffFormat } from "./diff-view.ts";
import { Feed, type Checked, type FeedOptions, frame, type Viewer } from "./live-feed.ts";
import { renderDiffSection, runRegions, type RunPageView, STALE_HEARTBEAT_MS } from "./run-page.ts";
import { esc } from "./html.ts";
import { renderQuestions } from "./questions-view.ts";

export interface RunViewer extends Viewer {
  /** Where the page lives (`/runs/<id>` or `/r/<token>`): the diff's links point there. */
  base: string;
  format: DiffFormat;
  full: boolean;
  /** A link viewer: the page token it came in with. */
  token: string | null;
  /** The diff the viewer's page shows (its key). */
  diffKey: string;
  /** A signed-in viewer's CSRF token: the agent's questions come to it as forms (else read-only). */
  csrf?: string | null;
}

/** Stands for a viewer's CSRF token in the questions' forms, rendered once for everyone and filled in per viewer. */
const CSRF_SLOT = "DECKHAND-CSRF-SLOT";

interface RunVersion {
  status: string;
  regions: Record<string, string>;
  /** The questions region with answer forms (CSRF_SLOT in place of the token). */
  answerable: string;
  items: Map<string, string>;
  diff: string | null;
  diffKey: string;
  terminal: boolean;
  pageToken: string;
  /** Diff sections drawn for this version, by way of showing it. */
  drawn: Map<string, string>;
  /** Frames already made for this version, by what the viewer has. */
  frames: Map<string, string | null>;
}

export interface RunFeedDeps {
  load: (runId: string) => Promise<Run | null>;
  view: (run: Run) => Promise<RunPageView>;
}

/** What the page shows of the row changes only with these (the lease, retry timing and such do not show). */
export function runChangeKey(run: Run, now: Date): string {
  const { diff, leaseOwner: _lo, leaseExpiresAt: _le, pageToken: _pt, ...shown } = run;
  const hb = run.lastHeartbeatAt?.getTime() ?? 0;
  const stale = run.status === "running" && hb > 0 && now.getTime() - hb > STALE_HEARTBEAT_MS;
  return `${JSON.stringify(shown)}|${diffKey(diff)}|${stale}`;
}

export class RunFeed extends Feed<RunVersion, RunViewer> {
  constructor(
    readonly runId: string,
    private readonly deps: RunFeedDeps,
    o: FeedOptions,
  ) {
    super(o);
  }

  protected async check(): Promise<Checked<RunVersion>> {
    const run = await this.deps.load(this.runId);
    if (!run) return { gone: true };
    const now = new Date();
    this.wakeWhenStale(run, now);
    const pageToken = run.pageToken;
    if (this.current) this.current.value.pageToken = pageToken; // a rotated link is noticed even when nothing else changed
    return {
      key: runChangeKey(run, now),
      render: async () => {
        const view = await this.deps.view(run);
        const { timeline, status, ...regions } = runRegions(view, now);
        return {
          status,
          regions,
          answerable: renderQuestions(view, CSRF_SLOT),
          items: new Map(timeline.map((t) => [t.id, t.html])),
          diff: run.diff,
          diffKey: diffKey(run.diff),
          terminal: isTerminal(run.status),
          pageToken,
          drawn: new Map(),
          frames: new Map(),
        };
      },
    };
  }

  /** A running run's heartbeat turns "quiet" on the page at a known time: refresh then (once), not on a timer. */
  private wakeWhenStale(run: Run, now: Date): void {
    if (this.extraTimer) clearTimeout(this.extraTimer);
    this.extraTimer = null;
    const hb = run.lastHeartbeatAt?.getTime();
    if (run.status !== "running" || !hb) return;
    const at = hb + STALE_HEARTBEAT_MS + 1;
    if (at <= now.getTime()) return;
    this.extraTimer = setTimeout(() => this.schedule(0), at - now.getTime());
    this.extraTimer.unref();
  }

  protected admit(v: RunViewer): boolean {
    return v.token === null || !this.current || safeEqual(v.token, this.current.value.pageToken);
  }

  protected ended(v: RunVersion): boolean {
    return v.terminal;
  }

  protected frameFor(viewer: RunViewer, prev: RunVersion | null, next: RunVersion): string | null {
    const withDiff = viewer.diffKey !== next.diffKey;
    const way = `${viewer.base}|${viewer.format}|${viewer.full}`;
    const csrf = viewer.csrf ?? null;
    const cacheKey = `${prev ? "delta" : "all"}|${withDiff ? way : ""}|${csrf ?? ""}`;
    let f = next.frames.get(cacheKey);
    if (f === undefined) {
      f = this.makeFrame(prev && this.forViewer(prev, csrf), this.forViewer(next, csrf), withDiff ? this.drawDiff(next, way, viewer) : undefined);
      next.frames.set(cacheKey, f);
    }
    viewer.diffKey = next.diffKey;
    return f;
  }

  /** The version as this viewer sees it: with answer forms carrying its own CSRF token when signed in. */
  private forViewer(v: RunVersion, csrf: string | null): RunVersion {
    if (csrf === null || !v.answerable) return v;
    return { ...v, regions: { ...v.regions, questions: v.answerable.split(CSRF_SLOT).join(esc(csrf)) } };
  }

  private drawDiff(v: RunVersion, way: string, viewer: RunViewer): string {
    let html = v.drawn.get(way);
    if (html === undefined) {
      html = renderDiffSection(v.diff, viewer.base, viewer.format, viewer.full);
      v.drawn.set(way, html);
    }
    return html;
  }

  private makeFrame(prev: RunVersion | null, next: RunVersion, diff: string | undefined): string | null {
    const changed: Record<string, string> = {};
    for (const [k, html] of Object.entries(next.regions)) if (!prev || prev.regions[k] !== html) changed[k] = html;
    const timeline = [...next.items].filter(([id, html]) => !prev || prev.items.get(id) !== html).map(([id, html]) => ({ id, html }));
    const news = !prev || timeline.length > 0 || Object.keys(changed).length > 0 || diff !== undefined || prev.status !== next.status;
    if (!news) return null;
    return frame("update", { status: next.status, ...changed, timeline, diffKey: next.diffKey, ...(diff !== undefined ? { diff } : {}) });
  }
}
