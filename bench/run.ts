/**
 * `npm run bench`: the spine's speed goals, measured (never asserted in tests). Results go to
 * bench/results/latest.json and bench/results/latest.md. The machine is shared and noisy: we report medians,
 * percentiles and ratios over several repetitions.
 *
 * 1. Run creation → prompt delivered to OpenCode, per phase, vs the same steps done by a plain shell script.
 * 2. Relay latency from an OpenCode event (its time in the sandbox) to its row in Postgres: p50 / p99.
 * 3. Receiver ingest through the relay endpoint with deduplication, on real Postgres: events per second.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { sql } from "drizzle-orm";
import { runEvents } from "../src/db/schema.ts";
import { opencodeBinary } from "../src/sandbox/index.ts";
import { hashToken } from "../src/runs/tokens.ts";
import { scripts, startModelServer } from "../tests/fakes/model-server.ts";
import { makeRepo, postgresAvailable, startTestServer, tmpDir } from "../tests/helpers/harness.ts";
import { forceRunRow } from "../tests/helpers/force-run-row.ts";

const REPS = Number(process.env.BENCH_REPS ?? 5);
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]! : NaN;
};
const median = (xs: number[]) => pct(xs, 50);
const round = (n: number) => Math.round(n * 10) / 10;

/**
 * The same raw steps in today's hardened sandbox (issue #13): own user and network namespaces, no capabilities,
 * an empty environment, pasta attached for outbound access; versus the unhardened bubblewrap of before.
 */
const HARDENED_FLAGS =
  "--unshare-user --unshare-net --cap-drop ALL --new-session --clearenv --setenv PATH /usr/bin:/bin --tmpfs /dev --dev-bind /dev/null /dev/null --dev-bind /dev/urandom /dev/urandom --dev-bind /dev/zero /dev/zero --info-fd 3";

async function rawShellBaseline(model: { baseUrl: string }, repo: string, hardened = false): Promise<number> {
  // The raw steps in one shell script: sandbox up, clone, start OpenCode and wait for it, create a session, prompt.
  const dir = tmpDir("deckhand-raw-");
  const script = `
set -e
D=${dir}
mkdir -p $D/ws $D/home $D/ctl
PORT=$(node -e 'const s=require("net").createServer().listen(0,()=>{console.log(s.address().port);s.close()})')
bwrap --unshare-pid --unshare-ipc --unshare-uts ${hardened ? HARDENED_FLAGS : "--dev /dev"} --ro-bind /usr /usr --ro-bind /etc /etc --symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 --proc /proc --tmpfs /tmp \\
  --bind $D/ws /workspace --bind $D/home /home/deckhand --bind $D/ctl /deckhand --ro-bind ${repo} ${repo} --ro-bind ${opencodeBinary()} /opt/oc \\
  --chdir /workspace -- /bin/sh -c '
    git clone -q file://${repo} /workspace/repo && cd /workspace/repo && git checkout -q -b deckhand/raw
    export HOME=/home/deckhand XDG_CONFIG_HOME=/home/deckhand/.config XDG_DATA_HOME=/home/deckhand/.local/share XDG_STATE_HOME=/home/deckhand/.local/state XDG_CACHE_HOME=/home/deckhand/.cache
    export OPENCODE_DISABLE_MODELS_FETCH=1 OPENCODE_DISABLE_AUTOUPDATE=1 OPENCODE_DISABLE_LSP_DOWNLOAD=1 OPENCODE_DISABLE_SHARE=1
    export OPENCODE_CONFIG_CONTENT='"'"'{"model":"l/m","provider":{"l":{"npm":"@ai-sdk/openai-compatible","options":{"baseURL":"${model.baseUrl}","apiKey":"k"},"models":{"m":{"tool_call":true}}}},"permission":{"*":"allow","question":"deny"}}'"'"'
    /opt/oc serve --port '$PORT' --hostname 127.0.0.1 --pure > /deckhand/oc.log 2>&1 &
    OC=$!
    n=0; until grep -q "opencode server listening" /deckhand/oc.log; do sleep 0.05; n=$((n+1)); [ $n -lt 1200 ] || exit 1; done
    SID=$(curl -s -X POST http://127.0.0.1:'$PORT'/session -H content-type:application/json -d "{}" | node -pe "JSON.parse(require(\\"fs\\").readFileSync(0)).id")
    curl -s -o /dev/null -X POST http://127.0.0.1:'$PORT'/session/$SID/prompt_async -H content-type:application/json -d "{\\"parts\\":[{\\"type\\":\\"text\\",\\"text\\":\\"hi\\"}]}"
    kill -9 $OC 2>/dev/null || true
  ' ${hardened ? `3>$D/info &
B=$!
until grep -q child-pid $D/info 2>/dev/null; do sleep 0.01; done
P=$(grep -o '"child-pid": [0-9]*' $D/info | grep -o '[0-9]*$')
pasta --quiet --config-net --no-map-gw -t none -u none -U none -T none --userns /proc/$P/ns/user --netns /proc/$P/ns/net 2>/dev/null || true
wait $B` : ""}
`;
  const t = performance.now();
  execFileSync("bash", ["-c", script], { stdio: "pipe", timeout: 120_000 });
  const ms = performance.now() - t;
  fs.rmSync(dir, { recursive: true, force: true });
  return ms;
}

async function benchProvisioning() {
  const model = await startModelServer({ handler: scripts.say("ok") });
  const repo = makeRepo();
  const srv = await startTestServer({ model, repos: { demo: repo.bare }, database: (await postgresAvailable()) ? "postgres" : "pglite" });
  const ours: number[] = [];
  const raw: number[] = [];
  const phases: Record<string, number[]> = {};
  const latencies: number[] = [];
  try {
    // Warm-up (first OpenCode start in a fresh HOME installs nothing with --pure, but caches get warm).
    await rawShellBaseline(model, repo.bare);
    for (let i = 0; i < REPS; i++) {
      raw.push(await rawShellBaseline(model, repo.bare));
      const { body } = await srv.api("POST", "/api/runs", { repo: "demo", prompt: `bench ${i}` });
      const run = await srv.waitFor(body.id, ["idle", "failed"], 120_000);
      const at = (p: string) => Date.parse(run.phases.find((x: { phase: string }) => x.phase === p)?.at ?? "NaN");
      const t0 = Date.parse(run.createdAt);
      ours.push(at("prompt_delivered") - t0);
      let prev = t0;
      for (const p of ["provisioning", "sandbox_created", "repo_cloned", "opencode_started", "relay_started", "opencode_ready", "prompt_delivered"]) {
        (phases[p] ??= []).push(at(p) - prev);
        prev = at(p);
      }
      const rows = await srv.deckhand.database.db.select().from(runEvents).where(sql`${runEvents.runId} = ${body.id}`);
      for (const r of rows) latencies.push(r.receivedAt.getTime() - r.at.getTime());
    }
  } finally {
    await srv.close();
    await model.close();
  }
  const oursMed = median(ours);
  const rawMed = median(raw);
  return {
    provisioning: {
      repetitions: REPS,
      deckhandMs: { p50: round(oursMed), p90: round(pct(ours, 90)) },
      rawShellMs: { p50: round(rawMed), p90: round(pct(raw, 90)) },
      ratio: round((oursMed / rawMed) * 100) / 100,
      overheadMs: round(oursMed - rawMed),
      goal: "overhead ≤ max(10%, 300 ms)",
      met: oursMed - rawMed <= Math.max(0.1 * rawMed, 300),
      phasesMsP50: Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, round(median(v))])),
    },
    relayLatency: {
      events: latencies.length,
      p50Ms: round(pct(latencies, 50)),
      p99Ms: round(pct(latencies, 99)),
      goal: "p99 ≤ 100 ms on loopback",
      met: pct(latencies, 99) <= 100,
    },
  };
}

/** Hardened vs unhardened sandbox, same raw steps, alternating, in one run (BENCH_ONLY=sandbox runs just this). */
async function benchSandboxHardening() {
  const model = await startModelServer({ handler: scripts.say("ok") });
  const repo = makeRepo();
  const raw: number[] = [];
  const hardened: number[] = [];
  try {
    await rawShellBaseline(model, repo.bare);
    await rawShellBaseline(model, repo.bare, true);
    for (let i = 0; i < REPS; i++) {
      raw.push(await rawShellBaseline(model, repo.bare));
      hardened.push(await rawShellBaseline(model, repo.bare, true));
    }
  } finally {
    await model.close();
  }
  const [r, h] = [median(raw), median(hardened)];
  return {
    repetitions: REPS,
    unhardenedMs: { p50: round(r), p90: round(pct(raw, 90)) },
    hardenedMs: { p50: round(h), p90: round(pct(hardened, 90)) },
    ratio: round((h / r) * 100) / 100,
    goal: "hardening adds ≤ max(10%, 300 ms) to sandbox up → prompt delivered",
    met: h - r <= Math.max(0.1 * r, 300),
  };
}

async function benchIngest() {
  if (!(await postgresAvailable())) return { skipped: "no Postgres" };
  const srv = await startTestServer({ database: "postgres", noReconciler: true });
  try {
    const run = await srv.deckhand.store.create({ repo: "demo", prompt: "ingest", source: "api" });
    await forceRunRow(srv.deckhand.store.db, run.id, { status: "running", relayTokenHash: hashToken("bench") });
    const total = Number(process.env.BENCH_INGEST_EVENTS ?? 50_000);
    const batch = 500;
    const body = (from: number) =>
      JSON.stringify({
        events: Array.from({ length: batch }, (_, i) => ({
          seq: from + i,
          type: "message.part.updated",
          at: new Date().toISOString(),
          data: { part: { type: "text", id: `p${from + i}`, text: "x".repeat(200) } },
        })),
      });
    const post = (b: string) =>
      fetch(`${srv.url}/relay/v1/runs/${run.id}/events`, { method: "POST", headers: { authorization: "Bearer bench", "content-type": "application/json" }, body: b }).then((r) => r.json());
    const bodies = Array.from({ length: total / batch }, (_, i) => body(1 + i * batch));
    const t = performance.now();
    // One relay sends batches one after another; a few runs at once send in parallel: 4 streams here.
    let next = 0;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (next < bodies.length) await post(bodies[next++]!);
      }),
    );
    const secs = (performance.now() - t) / 1000;
    const t2 = performance.now();
    for (let i = 0; i < 20; i++) await post(bodies[i]!); // duplicates: stored once
    const dupSecs = (performance.now() - t2) / 1000;
    const [{ n }] = (await srv.deckhand.database.db.select({ n: sql<number>`count(*)::int` }).from(runEvents)) as [{ n: number }];
    return {
      events: total,
      eventsPerSecond: Math.round(total / secs),
      duplicateEventsPerSecond: Math.round((20 * batch) / dupSecs),
      storedRows: n,
      goal: "≥ 10,000 events/s on 2 cores",
      met: total / secs >= 10_000,
    };
  } finally {
    await srv.close();
  }
}

const results: Record<string, unknown> = { at: new Date().toISOString(), machine: { cpus: os.cpus().length, node: process.version } };
if (process.env.BENCH_ONLY === "sandbox") {
  console.log(JSON.stringify({ sandboxHardening: await benchSandboxHardening() }, null, 2));
  process.exit(0);
}
Object.assign(results, await benchProvisioning());
results.sandboxHardening = await benchSandboxHardening();
results.ingest = await benchIngest();
// Large runs and many viewers (issue #15): ingest with the fold, page render and SSE p99, RSS (bench/events.ts).
const events = await import("./events.ts").catch(() => null);
if (events?.benchEvents && process.env.BENCH_SKIP_EVENTS !== "1") results.events = await events.benchEvents();
// Live pages (issue #15): 10,000 events, 50 SSE viewers; page render, event → all viewers, renders per event, RSS.
const live = await import("./live.ts").catch(() => null);
if (live?.benchLive && process.env.BENCH_SKIP_LIVE !== "1") {
  results.live = await live.benchLive();
  live.writeLiveResults(results.live as Record<string, unknown>);
}
const e2b = await import("./e2b.ts").catch(() => null);
if (e2b?.benchE2B) results.e2b = await e2b.benchE2B();
const gateway = await import("./gateway.ts").catch(() => null);
if (gateway?.benchGateway) results.gateway = await gateway.benchGateway();
const load = await import("./load.ts").catch(() => null);
if (load?.benchReliability && process.env.BENCH_SKIP_LOAD !== "1") results.reliability = await load.benchReliability();
const outage = await import("./outage.ts").catch(() => null);
if (outage?.benchOutage && process.env.BENCH_SKIP_OUTAGE !== "1") results.outage = await outage.benchOutage();
// Idle costs almost nothing (issue #15): memory held per idle local run, with and without suspension (bench/idle.ts).
const idle = await import("./idle.ts").catch(() => null);
if (idle?.benchIdle && process.env.BENCH_SKIP_IDLE !== "1") results.idle = await idle.benchIdle();
fs.mkdirSync(path.join(import.meta.dirname, "results"), { recursive: true });
fs.writeFileSync(path.join(import.meta.dirname, "results", "latest.json"), `${JSON.stringify(results, null, 2)}\n`);
console.log(JSON.stringify(results, null, 2));

process.exit(0);
