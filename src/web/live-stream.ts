/**
 * Live updates over server-sent events for the run pages and the runs list. One feed per run (and per set of list
 * filters) renders once per change and fans the frame out to all of its viewers (live-feed.ts, run-feed.ts);
 * the RunBus says which run changed, in this process or another. Connections are capped per run and in total
 * (live-limits.ts): over the cap, 429 with a message. A comment line every 10 s keeps proxies from closing idle
 * streams; nothing else is sent while nothing changes.
 */
import type { FastifyReply } from "fastify";
import type { Run } from "../db/schema.ts";
import { type Logger, runLog } from "../log/logger.ts";
import type { RunBus } from "../runs/run-bus.ts";
import { HttpError } from "../server/http-errors.ts";
import type { DiffFormat } from "./diff-view.ts";
import { Feed, type Checked, type FeedOptions, frame, SseConnection, type Viewer } from "./live-feed.ts";
import { LiveLimits } from "./live-limits.ts";
import { RunFeed, type RunFeedDeps } from "./run-feed.ts";
import { type ListFilters, type ListRow, renderRows } from "./runs-list.ts";

const RUN_DEBOUNCE_MS = 150;
const LIST_DEBOUNCE_MS = 400;
const PING_MS = 10_000;

export interface LiveStreamDeps extends RunFeedDeps {
  bus: RunBus;
  log: Logger;
  /** The runs list's rows for these filters. */
  listRows: (f: ListFilters) => Promise<ListRow[]>;
  /** Live connections per run and in total. */
  perRun: number;
  total: number;
}

/** What a list row shows (durations of active runs tick in the browser; the server's text is only a start). */
const listKey = (rows: ListRow[]) =>
  JSON.stringify(rows.map((r) => [r.id, r.status, r.statusReason, r.repo, r.branch, r.title, r.source, r.sourceRef, r.createdBy, r.createdAt, r.finishedAt, r.statusChangedAt, r.result, r.usage]));

/** The runs list: its rows re-rendered (once for all its viewers) when a row it shows changed. */
class ListFeed extends Feed<string, Viewer> {
  constructor(
    private readonly filters: ListFilters,
    private readonly rows: (f: ListFilters) => Promise<ListRow[]>,
    o: FeedOptions,
  ) {
    super(o);
  }
  protected async check(): Promise<Checked<string>> {
    const rows = await this.rows(this.filters);
    return { key: listKey(rows), render: async () => renderRows(rows) };
  }
  protected frameFor(_v: Viewer, prev: string | null, next: string): string | null {
    return prev === next ? null : frame("update", { rows: next });
  }
}

export class LiveStreams {
  readonly limits: LiveLimits;
  private readonly runs = new Map<string, RunFeed>();
  private readonly lists = new Map<string, ListFeed>();
  private readonly conns = new Set<SseConnection>();
  private readonly off: () => void;
  private readonly ping: NodeJS.Timeout;

  constructor(private readonly deps: LiveStreamDeps) {
    this.limits = new LiveLimits(deps.perRun, deps.total);
    this.off = deps.bus.onRun((id) => {
      this.runs.get(id)?.schedule();
      for (const l of this.lists.values()) l.schedule();
    });
    this.ping = setInterval(() => {
      for (const c of this.conns) c.ping();
    }, PING_MS);
    this.ping.unref();
  }

  /** Feeds alive now (one per watched run, one per watched list filter). */
  get feeds(): { runs: number; lists: number } {
    return { runs: this.runs.size, lists: this.lists.size };
  }

  /** A run page's stream. `token`: opened through the run's link (ends with "gone" once the link is rotated). */
  async run(reply: FastifyReply, run: Run, o: { base: string; format: DiffFormat; full: boolean; token: string | null; diffKey: string; csrf?: string | null }): Promise<void> {
    const conn = this.open(reply, run.id);
    let feed = this.runs.get(run.id);
    if (!feed) {
      const created = new RunFeed(run.id, this.deps, { kind: "run", debounceMs: RUN_DEBOUNCE_MS, log: runLog(this.deps.log, run.id), onEmpty: () => this.runs.get(run.id) === created && this.runs.delete(run.id) });
      this.runs.set(run.id, created);
      feed = created;
    }
    await feed.join({ conn, synced: null, ...o });
  }

  /** The runs list's stream, for one set of filters. */
  async list(reply: FastifyReply, filters: ListFilters): Promise<void> {
    const conn = this.open(reply, null);
    const key = JSON.stringify(filters);
    let feed = this.lists.get(key);
    if (!feed) {
      const created = new ListFeed(filters, this.deps.listRows, { kind: "list", debounceMs: LIST_DEBOUNCE_MS, log: this.deps.log, onEmpty: () => this.lists.get(key) === created && this.lists.delete(key) });
      this.lists.set(key, created);
      feed = created;
    }
    await feed.join({ conn, synced: null });
  }

  /** Take a connection slot (429 over the caps) and start the event stream. */
  private open(reply: FastifyReply, runId: string | null): SseConnection {
    const slot = this.limits.acquire(runId);
    if ("refused" in slot) throw new HttpError(429, slot.refused);
    reply.hijack();
    const conn = new SseConnection(reply.raw);
    this.conns.add(conn);
    conn.whenClosed(() => {
      slot.release();
      this.conns.delete(conn);
    });
    return conn;
  }

  close(): void {
    this.off();
    clearInterval(this.ping);
    for (const f of [...this.runs.values(), ...this.lists.values()]) f.dispose();
  }
}
