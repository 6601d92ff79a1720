/**
 * Model gateway overhead: the same streamed chat completion straight from the scripted model server and through
 * Deckhand's gateway (token check, budget check, forwarding, usage tap and record), alternated, on loopback.
 * Reports added time to first token (p50, p99) and to the last chunk of a long stream.
 * Goal: at most 5 ms added at p50, and chunks never held back (the last chunk arrives no later than direct + 5 ms).
 *
 * Alone: `npx tsx bench/gateway.ts` (writes bench/results/gateway.json); `npm run bench` includes it.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { hashToken, randomToken } from "../src/runs/tokens.ts";
import { startModelServer } from "../tests/fakes/model-server.ts";
import { startTestServer } from "../tests/helpers/harness.ts";
import { forceRunRow } from "../tests/helpers/force-run-row.ts";

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]! : NaN;
};
const round = (n: number) => Math.round(n * 100) / 100;

async function timeStream(url: string, key: string): Promise<{ ttft: number; last: number }> {
  const t0 = performance.now();
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify({ model: "m", stream: true, stream_options: { include_usage: true }, messages: [{ role: "user", content: "bench" }] }),
  });
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let ttft = NaN;
  let buf = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    if (Number.isNaN(ttft) && buf.includes('"content":"') && !buf.includes('"content":""}')) ttft = performance.now() - t0;
    if (Number.isNaN(ttft) && /"content":"[^"]/.test(buf)) ttft = performance.now() - t0;
  }
  return { ttft, last: performance.now() - t0 };
}

export async function benchGateway(reps = Number(process.env.BENCH_GATEWAY_REPS ?? 200)) {
  // Everything runs in one process on a machine that may be busy: the load average says how far to trust a result.
  const loadBefore = os.loadavg()[0]!;
  const model = await startModelServer();
  const srv = await startTestServer({ model, noReconciler: true, database: process.env.BENCH_GATEWAY_DB === "pglite" ? "pglite" : "postgres", env: { LOG_LEVEL: "warn" } });
  try {
    const created = await srv.api("POST", "/api/runs", { repo: "demo", prompt: "bench" });
    const token = randomToken();
    await forceRunRow(srv.deckhand.store.db, created.body.id, { status: "running", modelTokenHash: hashToken(token) });
    const direct = `${model.baseUrl}/chat/completions`;
    const viaGateway = `${srv.url}/gateway/v1/chat/completions`;

    const measure = async (n: number) => {
      const d: { ttft: number; last: number }[] = [];
      const g: { ttft: number; last: number }[] = [];
      for (let i = 0; i < n; i++) {
        // Alternate the order so that neither side always runs on a warmer machine.
        if (i % 2) {
          d.push(await timeStream(direct, "test-key"));
          g.push(await timeStream(viaGateway, token));
        } else {
          g.push(await timeStream(viaGateway, token));
          d.push(await timeStream(direct, "test-key"));
        }
      }
      return { d, g };
    };

    // Short answers: time to first token.
    model.setHandler(() => ({ text: "Hello there, this is a short streamed answer." }));
    await measure(10); // warm-up
    const short = await measure(reps);
    // A long stream: 200 chunks, 5 ms apart (≈ 1 s): is anything held back?
    model.setHandler(() => ({ text: "x".repeat(16 * 200), chunkDelayMs: 5 }));
    const long = await measure(Math.max(5, Math.round(reps / 20)));

    const ttftAdded = { p50: round(pct(short.g.map((x) => x.ttft), 50) - pct(short.d.map((x) => x.ttft), 50)), p99: round(pct(short.g.map((x) => x.ttft), 99) - pct(short.d.map((x) => x.ttft), 99)) };
    const lastAdded = { p50: round(pct(long.g.map((x) => x.last), 50) - pct(long.d.map((x) => x.last), 50)), p99: round(pct(long.g.map((x) => x.last), 99) - pct(long.d.map((x) => x.last), 99)) };
    return {
      repetitions: reps,
      cpus: os.cpus().length,
      loadAverage1m: { before: round(loadBefore), after: round(os.loadavg()[0]!) },
      directTtftMs: { p50: round(pct(short.d.map((x) => x.ttft), 50)), p99: round(pct(short.d.map((x) => x.ttft), 99)) },
      gatewayTtftMs: { p50: round(pct(short.g.map((x) => x.ttft), 50)), p99: round(pct(short.g.map((x) => x.ttft), 99)) },
      addedTtftMs: ttftAdded,
      longStream: {
        chunks: 200,
        repetitions: long.d.length,
        directLastChunkMs: round(pct(long.d.map((x) => x.last), 50)),
        gatewayLastChunkMs: round(pct(long.g.map((x) => x.last), 50)),
        addedLastChunkMs: lastAdded,
      },
      goal: "≤ 5 ms added to time to first token at p50 on loopback; last chunk not held back",
      met: ttftAdded.p50 <= 5 && lastAdded.p50 <= 5,
    };
  } finally {
    await srv.close();
    await model.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = { at: new Date().toISOString(), gateway: await benchGateway() };
  fs.mkdirSync(path.join(import.meta.dirname, "results"), { recursive: true });
  fs.writeFileSync(path.join(import.meta.dirname, "results", "gateway.json"), `${JSON.stringify(r, null, 2)}\n`);
  console.log(JSON.stringify(r, null, 2));
  process.exit(0);
}
