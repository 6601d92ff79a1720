/**
 * Large runs, many viewers (issue #15): a run with 10,000 events and 50 people watching its page.
 * - receiver ingest rate with the fold into the stored digest (goal ≥ 10,000 events/s);
 * - run page render time (50 concurrent GETs): p50 / p99;
 * - SSE: time from an event pushed by the relay to the update reaching each of 50 live viewers: p50 / p99;
 * - server RSS before and after.
 * `npx tsx bench/events.ts` alone, or as part of `npm run bench`. Figures, never assertions.
 */
import { performance } from "node:perf_hooks";
import { hashToken } from "../src/runs/tokens.ts";
import { postgresAvailable, startTestServer } from "../tests/helpers/harness.ts";
import { forceRunRow } from "../tests/helpers/force-run-row.ts";
import { MAX_BATCH_EVENTS } from "../src/relay/agent/outbox.ts";

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? Math.round(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]! * 10) / 10 : NaN;
};
const mb = (n: number) => Math.round(n / 1048576);

/**
 * A realistic event for sequence number `seq`, in a mix of five: a tool call, its result, text, the model's
 * reasoning (folded for LINEAR_VERBOSITY=verbose; a reasoning model streams it), a todo list.
 */
export function eventAt(seq: number) {
  const at = new Date().toISOString();
  // BENCH_REASONING=0: the earlier mix of four, without reasoning (to compare with results from before it).
  const kinds = process.env.BENCH_REASONING === "0" ? 4 : 5;
  const k = seq % kinds === 3 && kinds === 4 ? 4 : seq % kinds;
  const call = `call-${Math.floor(seq / kinds)}`;
  if (k === 0) return { seq, type: "message.part.updated", at, data: { part: { type: "tool", callID: call, tool: "bash", state: { status: "running", input: { command: `npm test -- ${seq}` } } } } };
  if (k === 1) return { seq, type: "message.part.updated", at, data: { part: { type: "tool", callID: call, tool: "bash", state: { status: "completed", input: { command: `npm test -- ${seq}` }, output: "ok\n".repeat(50) } } } };
  if (k === 2) return { seq, type: "message.part.updated", at, data: { part: { type: "text", id: `p${seq}`, messageID: `m${Math.floor(seq / 40)}`, text: "Working on it. ".repeat(20) } } };
  if (k === 3) return { seq, type: "message.part.updated", at, data: { part: { type: "reasoning", id: `r${Math.floor(seq / 20)}`, messageID: `m${Math.floor(seq / 40)}`, text: "Considering the options. ".repeat(1 + (seq % 60)), time: { start: 1, ...(seq % 20 > 15 ? { end: 2 } : {}) } } } };
  return { seq, type: "todo.updated", at, data: { todos: [{ content: "Read the code", status: "completed" }, { content: `Step ${seq}`, status: "in_progress" }] } };
}

export async function benchEvents(o: { events?: number; viewers?: number } = {}): Promise<Record<string, unknown>> {
  const total = o.events ?? Number(process.env.BENCH_EVENTS ?? 10_000);
  const viewers = o.viewers ?? Number(process.env.BENCH_VIEWERS ?? 50);
  const database = (await postgresAvailable()) ? "postgres" : "pglite";
  const srv = await startTestServer({ database, noReconciler: true, env: { MAX_LIVE_PER_RUN: String(viewers + 10), MAX_LIVE_TOTAL: String(viewers + 50) } });
  const rssStart = process.memoryUsage().rss;
  try {
    const run = await srv.deckhand.store.create({ repo: "demo", prompt: "large run", source: "api" });
    await forceRunRow(srv.deckhand.store.db, run.id, { status: "running", relayTokenHash: hashToken("bench-events") });
    const post = (events: unknown[]) =>
      fetch(`${srv.url}/relay/v1/runs/${run.id}/events`, { method: "POST", headers: { authorization: "Bearer bench-events", "content-type": "application/json" }, body: JSON.stringify({ events }) }).then(async (r) => {
        if (r.status !== 200) throw new Error(`ingest answered ${r.status}: ${await r.text()}`);
        return r.json();
      });

    // 1. Ingest, one relay sending its batches one after another (as the relay does).
    // The relay sends what piled up, at most MAX_BATCH_EVENTS (500) at a time: 500 when events come faster than they
    // are stored (the sustained rate), BENCH_INGEST_BATCH to try another size.
    const batch = Number(process.env.BENCH_INGEST_BATCH ?? MAX_BATCH_EVENTS);
    const t0 = performance.now();
    for (let s = 1; s <= total; s += batch) await post(Array.from({ length: Math.min(batch, total - s + 1) }, (_, i) => eventAt(s + i)));
    const ingestSecs = (performance.now() - t0) / 1000;

    // 2. Page render: 50 concurrent GETs of the run page.
    const page = `${srv.url}/r/${run.pageToken}`;
    const renders = await Promise.all(
      Array.from({ length: viewers }, async () => {
        const t = performance.now();
        const res = await fetch(page);
        await res.text();
        return performance.now() - t;
      }),
    );

    // 3. SSE: 50 viewers; each relay push → time until every viewer has the update with that item.
    const streams = await Promise.all(
      Array.from({ length: viewers }, async () => {
        const ac = new AbortController();
        const res = await fetch(`${page}/events`, { signal: ac.signal });
        const reader = res.body!.getReader();
        const state = { text: "", waiters: [] as { needle: string; resolve: () => void }[] };
        void (async () => {
          for (;;) {
            const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
            if (done) return;
            state.text += new TextDecoder().decode(value);
            if (state.text.length > 1_000_000) state.text = state.text.slice(-100_000);
            state.waiters = state.waiters.filter((w) => (state.text.includes(w.needle) ? (w.resolve(), false) : true));
          }
        })();
        return { ac, state };
      }),
    );
    const sse: number[] = [];
    let seq = total;
    for (let round = 0; round < 10; round++) {
      seq++;
      const needle = `round-${round}-marker`;
      const ev = { seq, type: "message.part.updated", at: new Date().toISOString(), data: { part: { type: "text", id: `r${round}`, messageID: "mx", text: needle } } };
      const t = performance.now();
      const arrived = streams.map((s) => new Promise<number>((resolve) => s.state.waiters.push({ needle, resolve: () => resolve(performance.now() - t) })));
      await post([ev]);
      sse.push(...(await Promise.race([Promise.all(arrived), new Promise<number[]>((r) => setTimeout(() => r([Number.POSITIVE_INFINITY]), 30_000))])));
    }
    for (const s of streams) s.ac.abort();
    const rssEnd = process.memoryUsage().rss;
    return {
      database,
      events: total,
      viewers,
      ingestBatch: batch,
      ingestEventsPerSecond: Math.round(total / ingestSecs),
      ingestGoal: "≥ 10,000 events/s",
      pageRenderMs: { p50: pct(renders, 50), p99: pct(renders, 99) },
      sseUpdateMs: { p50: pct(sse, 50), p99: pct(sse, 99), samples: sse.length },
      rssMB: { start: mb(rssStart), end: mb(rssEnd) },
    };
  } finally {
    await srv.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await benchEvents(), null, 2));
  process.exit(0);
}
