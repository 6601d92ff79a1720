/**
 * Live pages under load (issue #15): a run with 10,000 events and 50 people watching it over server-sent events.
 * - run page render (50 concurrent GETs): p50 / p99;
 * - time from one new event pushed by the relay to *all* 50 viewers having it (per round: the slowest viewer),
 *   and to each viewer: p50 / p99;
 * - how many times the run's fragment was rendered per new event (deckhand_live_renders_total; 1 is the goal);
 * - frames sent to a viewer while nothing changed (goal 0);
 * - server RSS (this process: the server runs in it).
 * Results to bench/results/live.json. `npx tsx bench/live.ts` alone, or part of `npm run bench`. Figures only.
 */
import fs from "node:fs";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { hashToken } from "../src/runs/tokens.ts";
import { postgresAvailable, startTestServer } from "../tests/helpers/harness.ts";
import { parsePrometheus } from "../tests/ops/prom-text.ts";
import { eventAt } from "./events.ts";
import { forceRunRow } from "../tests/helpers/force-run-row.ts";

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? Math.round(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]! * 10) / 10 : NaN;
};
const mb = (n: number) => Math.round(n / 1048576);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A realistic mix: tool calls (running, then completed), text parts, plan updates. */

export async function benchLive(o: { events?: number; viewers?: number; rounds?: number } = {}): Promise<Record<string, unknown>> {
  const total = o.events ?? Number(process.env.BENCH_EVENTS ?? 10_000);
  const viewers = o.viewers ?? Number(process.env.BENCH_VIEWERS ?? 50);
  const rounds = o.rounds ?? 20;
  const database = (await postgresAvailable()) ? "postgres" : "pglite";
  const srv = await startTestServer({ database, noReconciler: true, env: { MAX_LIVE_PER_RUN: String(viewers + 10), MAX_LIVE_TOTAL: String(viewers + 50) } });
  const rssStart = process.memoryUsage().rss;
  const renders = async () => {
    const res = await fetch(`${srv.url}/metrics`, { headers: { authorization: `Bearer ${srv.deckhand.apiToken}` } });
    const s = parsePrometheus(await res.text()).filter((x) => x.name === "deckhand_live_renders_total" && x.labels.kind === "run");
    return s.length ? s.reduce((n, x) => n + x.value, 0) : null;
  };
  try {
    const run = await srv.deckhand.store.create({ repo: "demo", prompt: "large run", source: "api" });
    await forceRunRow(srv.deckhand.store.db, run.id, { status: "running", relayTokenHash: hashToken("bench-live") });
    const post = (events: unknown[]) =>
      fetch(`${srv.url}/relay/v1/runs/${run.id}/events`, { method: "POST", headers: { authorization: "Bearer bench-live", "content-type": "application/json" }, body: JSON.stringify({ events }) }).then(async (r) => {
        if (r.status !== 200) throw new Error(`ingest answered ${r.status}: ${await r.text()}`);
        return r.json();
      });
    for (let s = 1; s <= total; s += 200) await post(Array.from({ length: Math.min(200, total - s + 1) }, (_, i) => eventAt(s + i)));

    // Page render: 50 concurrent GETs, twice (the first warms the digest cache).
    const page = `${srv.url}/r/${run.pageToken}`;
    const pageTimes: number[] = [];
    for (let rep = 0; rep < 2; rep++) {
      const ts = await Promise.all(
        Array.from({ length: viewers }, async () => {
          const t = performance.now();
          await (await fetch(page)).text();
          return performance.now() - t;
        }),
      );
      if (rep === 1) pageTimes.push(...ts);
    }

    // 50 live viewers.
    const streams = await Promise.all(
      Array.from({ length: viewers }, async () => {
        const ac = new AbortController();
        const res = await fetch(`${page}/events`, { signal: ac.signal });
        const reader = res.body!.getReader();
        const state = { text: "", frames: 0, waiters: [] as { needle: string; resolve: () => void }[] };
        void (async () => {
          const dec = new TextDecoder();
          for (;;) {
            const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
            if (done) return;
            const chunk = dec.decode(value);
            state.frames += (chunk.match(/^event: /gm) ?? []).length;
            state.text += chunk;
            if (state.text.length > 1_000_000) state.text = state.text.slice(-100_000);
            state.waiters = state.waiters.filter((w) => (state.text.includes(w.needle) ? (w.resolve(), false) : true));
          }
        })();
        return { ac, state };
      }),
    );
    // Everyone has had the first snapshot.
    while (streams.some((s) => s.state.frames === 0)) await sleep(20);

    // Nothing changes for a while (but wake-ups arrive): frames sent meanwhile.
    const quietFrames0 = streams.reduce((n, s) => n + s.state.frames, 0);
    for (let i = 0; i < 5; i++) {
      await srv.deckhand.bus.changed(run.id);
      await sleep(400);
    }
    const quietFrames = streams.reduce((n, s) => n + s.state.frames, 0) - quietFrames0;

    const toAll: number[] = [];
    const toEach: number[] = [];
    const rendersPerEvent: number[] = [];
    let seq = total;
    for (let round = 0; round < rounds; round++) {
      seq++;
      const needle = `round-${round}-marker`;
      const ev = { seq, type: "message.part.updated", at: new Date().toISOString(), data: { part: { type: "text", id: `r${round}`, messageID: "mx", text: needle } } };
      const before = await renders();
      const t = performance.now();
      const arrived = streams.map((s) => new Promise<number>((resolve) => s.state.waiters.push({ needle, resolve: () => resolve(performance.now() - t) })));
      await post([ev]);
      const times = await Promise.race([Promise.all(arrived), new Promise<number[]>((r) => setTimeout(() => r([Number.POSITIVE_INFINITY]), 30_000))]);
      toEach.push(...times);
      toAll.push(Math.max(...times));
      await sleep(300); // let late wake-ups (NOTIFY echoes) settle before counting renders
      const after = await renders();
      if (before !== null && after !== null) rendersPerEvent.push(after - before);
    }
    for (const s of streams) s.ac.abort();
    const rssEnd = process.memoryUsage().rss;
    return {
      at: new Date().toISOString(),
      database,
      events: total,
      viewers,
      rounds,
      pageRenderMs: { p50: pct(pageTimes, 50), p99: pct(pageTimes, 99) },
      eventToAllViewersMs: { p50: pct(toAll, 50), p99: pct(toAll, 99) },
      eventToEachViewerMs: { p50: pct(toEach, 50), p99: pct(toEach, 99), samples: toEach.length },
      rendersPerEvent: rendersPerEvent.length ? { p50: pct(rendersPerEvent, 50), max: Math.max(...rendersPerEvent) } : null,
      framesWhileUnchanged: quietFrames,
      rssMB: { start: mb(rssStart), end: mb(rssEnd) },
    };
  } finally {
    await srv.close();
  }
}

export function writeLiveResults(r: Record<string, unknown>): void {
  fs.mkdirSync(path.join(import.meta.dirname, "results"), { recursive: true });
  fs.writeFileSync(path.join(import.meta.dirname, "results", "live.json"), `${JSON.stringify(r, null, 2)}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await benchLive();
  writeLiveResults(r);
  console.log(JSON.stringify(r, null, 2));
  process.exit(0);
}
