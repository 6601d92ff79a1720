/**
 * Load and reliability goals, measured (not asserted). The server runs as a child process (`node bin/deckhand.mjs
 * serve`) so its CPU and memory can be read from /proc. Call from bench/run.ts, or run alone:
 *   npx tsx bench/load.ts [burst|steady|death]   BENCH_STEADY_RUNS=20 BENCH_BURST=200 BENCH_BURST_DATABASE=pglite|postgres
 *
 * 1. benchBurst: 200 signed Slack mentions within 10 s (plus Slack's retries of some) while runs start, on PGlite
 *    and on Postgres: ack latency p50/p99, the server's event-loop delay (monitorEventLoopDelay, via
 *    bench/event-loop-probe.mjs), duplicate runs, runs working vs queued under MAX_CONCURRENT_RUNS, memory.
 * 2. benchSteady: N concurrent runs (scripted model held silent): server CPU and memory per active run.
 * 3. benchDeathNotice: OpenCode killed inside the sandbox → the Slack user told (production intervals).
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { loadConfig } from "../src/config/config.ts";
import { createLogger } from "../src/log/logger.ts";
import { createSandboxProvider } from "../src/sandbox/index.ts";
import { RUN_LABEL } from "../src/sandbox/provider.ts";
import { type ModelHandler, startModelServer } from "../tests/fakes/model-server.ts";
import { startFakeSlack } from "../tests/fakes/slack.ts";
import { freePort, freshPostgres, makeRepo, postgresAvailable, tmpDir } from "../tests/helpers/harness.ts";
import { gate, pg, procStats, sleep, spawnServer, until } from "../tests/faults/helpers.ts";
import { slackEnv, slackMention } from "../tests/faults/surfaces.ts";

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]! : NaN;
};
const r1 = (n: number) => Math.round(n * 10) / 10;
const MB = (b: number) => r1(b / 1024 / 1024);

type Server = Awaited<ReturnType<typeof setup>>;

/** The server's event-loop delay since the previous call (bench/event-loop-probe.mjs, preloaded into it). */
async function eventLoopDelay(s: Server): Promise<{ p50: number; p99: number; max: number; mean: number } | null> {
  const before = fs.existsSync(s.eldFile) ? fs.readFileSync(s.eldFile, "utf8") : "";
  process.kill(s.server.pid, "SIGUSR2");
  return until("event-loop figures", () => {
    const now = fs.existsSync(s.eldFile) ? fs.readFileSync(s.eldFile, "utf8") : "";
    return now && now !== before ? JSON.parse(now) : null;
  }, 10_000, 20).catch(() => null);
}

/** RSS of the server and of its direct children (the embedded database's process when PGlite, sandboxes). */
function memory(pid: number): { serverMB: number; childrenMB: number } {
  let children = 0;
  try {
    for (const c of fs.readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean)) {
      try {
        children += procStats(Number(c)).rssBytes;
      } catch {
        /* gone */
      }
    }
  } catch {
    /* no children file */
  }
  return { serverMB: MB(procStats(pid).rssBytes), childrenMB: MB(children) };
}

/** A server child process with fake Slack and the scripted model; everything torn down by `close`. */
async function setup(o: { handler: ModelHandler; env?: Record<string, string>; database: "postgres" | "pglite" }) {
  const db = o.database === "postgres" ? await freshPostgres() : null;
  const model = await startModelServer({ handler: o.handler });
  const slack = await startFakeSlack();
  const dataDir = tmpDir("deckhand-bench-");
  const eldFile = path.join(dataDir, "event-loop.json");
  const env: Record<string, string> = {
    PORT: String(await freePort()),
    HOST: "127.0.0.1",
    DATA_DIR: dataDir,
    ...(db ? { DATABASE_URL: db.url } : {}),
    REPOS: `demo=${makeRepo({ "README.md": "# demo\n" }).bare}`,
    LLM_BASE_URL: model.baseUrl,
    LLM_MODEL: "m",
    LLM_API_KEY: "bench-key",
    API_TOKEN: "bench-api-token-0123456789",
    LOG_LEVEL: "warn",
    NODE_OPTIONS: `--import ${path.join(import.meta.dirname, "event-loop-probe.mjs")}`,
    BENCH_ELD_FILE: eldFile,
    ...slackEnv(slack),
    ...o.env,
  };
  if (!db) {
    // A new PGlite directory runs initdb (tens of seconds on a busy machine): do it before the timed start-up.
    execFileSync(process.execPath, [path.join(import.meta.dirname, "../bin/deckhand.mjs"), "migrate"], { env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? "/tmp", DATA_DIR: dataDir }, stdio: "ignore", timeout: 600_000 });
  }
  const server = await spawnServer(env, path.join(dataDir, "server.log"), 300_000); // a busy shared machine
  const sql = db ? pg(db.url) : null;
  const api = async (p: string) => (await fetch(`${server.url}${p}`, { headers: { authorization: `Bearer ${env.API_TOKEN}` } })).json() as Promise<any>;
  return {
    env,
    server,
    slack,
    model,
    api,
    eldFile,
    database: o.database,
    async close() {
      await server.kill("SIGTERM");
      const provider = await createSandboxProvider(loadConfig(env), createLogger({ level: "silent" }));
      for (const sb of await provider.list()) await provider.destroy(sb.id);
      await sql?.end();
      await db?.drop();
      await Promise.all([model.close(), slack.close()]);
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Every benchmark here the same way: a server whose scripted model holds its first answer until the benchmark is
 * done (so runs stay working), torn down afterwards whatever happens.
 */
async function withServer<T>(o: { env?: Record<string, string>; database?: "postgres" | "pglite" }, fn: (s: Server) => Promise<T>): Promise<T> {
  const hold = gate();
  const database = o.database ?? ((await postgresAvailable()) ? "postgres" : "pglite");
  const s = await setup({
    database,
    handler: async (req) => {
      if (req.lastRole === "tool") return { text: "Done." };
      await hold.p;
      return { text: "ok" };
    },
    env: o.env,
  });
  try {
    return await fn(s);
  } finally {
    hold.open();
    await s.close();
  }
}

/** 1. A burst of Slack mentions against one server. */
export async function benchLoad(database: "postgres" | "pglite"): Promise<Record<string, unknown>> {
  const N = Number(process.env.BENCH_BURST ?? 200);
  const LIMIT = 4;
  return withServer({ database, env: { MAX_CONCURRENT_RUNS: String(LIMIT) } }, async (s) => {
    await sleep(2000); // let the server settle (start-up compilation, reaper's first sweep)
    const memBefore = procStats(s.server.pid).rssBytes;
    const childrenBefore = memory(s.server.pid).childrenMB;
    await eventLoopDelay(s); // start the window now
    const mentions = Array.from({ length: N }, (_, i) => slackMention(s.slack, `burst ${i}: write a file`));
    const latencies: number[] = [];
    const statuses: Record<number, number> = {};
    let peakRss = memBefore;
    const sampler = setInterval(() => {
      try {
        peakRss = Math.max(peakRss, procStats(s.server.pid).rssBytes);
      } catch {
        /* gone */
      }
    }, 100);
    const spacing = 10_000 / N;
    const t0 = performance.now();
    const sends: Promise<void>[] = [];
    for (let i = 0; i < N; i++) {
      const at = t0 + i * spacing;
      const wait = at - performance.now();
      if (wait > 0) await sleep(wait);
      const one = async (retry?: number) => {
        const t = performance.now();
        const r = await mentions[i]!.deliver(s.server.url, retry).catch(() => ({ status: -1 }));
        latencies.push(performance.now() - t);
        statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      };
      sends.push(one());
      if (i % 10 === 0) sends.push(sleep(300).then(() => one(1))); // Slack's retry of every tenth event
    }
    await Promise.all(sends);
    const burstMs = performance.now() - t0;
    clearInterval(sampler);
    const loop = await eventLoopDelay(s);
    // Every mention becomes exactly one run; only LIMIT of them work at once.
    const runs = await until(
      "every run recorded",
      async () => {
        const list = (await s.api(`/api/runs?source=slack&limit=500`)).runs as { id: string; status: string }[];
        return list.length >= N ? list : null;
      },
      60_000,
      500,
    ).catch(async () => (await s.api(`/api/runs?source=slack&limit=500`)).runs as { id: string; status: string }[]);
    await sleep(2000);
    const byStatus: Record<string, number> = {};
    for (const r of (await s.api(`/api/runs?source=slack&limit=500`)).runs as { status: string }[]) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
    const memAfter = procStats(s.server.pid).rssBytes;
    return {
      database: s.database,
      mentions: N,
      requests: latencies.length,
      burstSeconds: r1(burstMs / 1000),
      ackMs: { p50: r1(pct(latencies, 50)), p95: r1(pct(latencies, 95)), p99: r1(pct(latencies, 99)), max: r1(Math.max(...latencies)) },
      ackStatuses: statuses,
      unanswered: statuses[-1] ?? 0,
      goalP99Under1s: pct(latencies, 99) < 1000,
      serverEventLoopDelayMs: loop,
      runs: runs.length,
      duplicateRuns: Math.max(0, runs.length - N),
      runsByStatus: byStatus,
      concurrencyLimit: LIMIT,
      underLimit: (byStatus.provisioning ?? 0) + (byStatus.running ?? 0) <= LIMIT,
      serverRssMB: { before: MB(memBefore), peak: MB(peakRss), after: MB(memAfter) },
      // The server's direct children: the embedded database's process (PGlite) and the sandboxes' bwrap processes.
      childProcessesRssMB: { before: childrenBefore, after: memory(s.server.pid).childrenMB },
    };
  });
}

/** 2. Steady state: N runs working at once (the model holds its answer), server CPU and memory per run. */
export async function benchSteady(): Promise<Record<string, unknown>> {
  const N = Number(process.env.BENCH_STEADY_RUNS ?? 20);
  const WINDOW_MS = Number(process.env.BENCH_STEADY_WINDOW_MS ?? 30_000);
  return withServer({ env: { MAX_CONCURRENT_RUNS: String(N), PROVISION_TIMEOUT_SECONDS: "900" } }, async (s) => {
    await sleep(3000);
    const measure = async (ms: number) => {
      const a = procStats(s.server.pid);
      const t = performance.now();
      await sleep(ms);
      const b = procStats(s.server.pid);
      const wall = (performance.now() - t) / 1000;
      return { cpuPercentOfCore: ((b.cpuSeconds - a.cpuSeconds) / wall) * 100, rssBytes: b.rssBytes };
    };
    const idle = await measure(10_000);
    const t0 = performance.now();
    const ids: string[] = [];
    for (let i = 0; i < N; i++) {
      const r = await fetch(`${s.server.url}/api/runs`, {
        method: "POST",
        headers: { authorization: `Bearer ${s.env.API_TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ repo: "demo", prompt: `steady ${i}` }),
      });
      ids.push(((await r.json()) as { id: string }).id);
    }
    await until(`${N} runs working`, () => s.model.requests.length >= N, 15 * 60_000, 1000);
    const startupSeconds = (performance.now() - t0) / 1000;
    await sleep(5000);
    const statuses: Record<string, number> = {};
    for (const id of ids) {
      const st = (await s.api(`/api/runs/${id}`)).status as string;
      statuses[st] = (statuses[st] ?? 0) + 1;
    }
    const busy = await measure(WINDOW_MS);
    const perRunMB = (busy.rssBytes - idle.rssBytes) / N / 1024 / 1024;
    const perRunCpu = (busy.cpuPercentOfCore - idle.cpuPercentOfCore) / N;
    return {
      database: s.database,
      runs: N,
      statuses,
      secondsUntilAllWorking: r1(startupSeconds),
      heartbeatIntervalSeconds: 15,
      windowSeconds: WINDOW_MS / 1000,
      serverIdle: { cpuPercentOfCore: r1(idle.cpuPercentOfCore), rssMB: MB(idle.rssBytes) },
      serverWithRuns: { cpuPercentOfCore: r1(busy.cpuPercentOfCore), rssMB: MB(busy.rssBytes) },
      perActiveRun: { rssMB: r1(perRunMB), cpuPercentOfCore: Math.round(perRunCpu * 100) / 100 },
      goals: { memoryUnder5MB: perRunMB <= 5, cpuUnder1Percent: perRunCpu <= 1 },
    };
  });
}

/** 3. OpenCode dies inside a working run's sandbox: how long until the Slack user is told (production intervals). */
export async function benchDeathNotice(): Promise<Record<string, unknown>> {
  return withServer({}, async (s) => {
    const m = slackMention(s.slack, "write a file, slowly");
    await m.deliver(s.server.url);
    await until("the agent working", () => s.model.requests.length >= 1, 120_000, 200);
    const run = await until("the run", async () => ((await s.api(`/api/runs?source=slack`)).runs as { id: string }[])[0], 10_000);
    const full = await s.api(`/api/runs/${run.id}`);
    const provider = await createSandboxProvider(loadConfig(s.env), createLogger({ level: "silent" }));
    const [sb] = await provider.list({ [RUN_LABEL]: run.id });
    const sandbox = (await provider.get(sb!.id))!;
    const killedAt = Date.now();
    await sandbox.exec(["/bin/sh", "-c", `kill -9 "$(cat ${sandbox.paths.control}/opencode.pid)"`]);
    const failed = await until("the run failed", async () => {
      const v = await s.api(`/api/runs/${run.id}`);
      return v.status === "failed" ? v : null;
    }, 180_000, 100);
    const failedMs = Date.now() - killedAt;
    const told = await until("the Slack user told", () => m.botMessages().find((x) => /:(final:\d+|end)$/.test(x.key ?? "")), 180_000, 50);
    const toldAt = Date.now();
    return {
      database: s.database,
      phaseBeforeKill: full.status,
      failureCode: failed.failureCode,
      reason: failed.reason,
      msUntilRunFailed: failedMs,
      msUntilSlackUserTold: toldAt - killedAt,
      toldText: told.text.slice(0, 160),
      goalUnder60s: toldAt - killedAt <= 60_000,
      note: "a sandbox that dies whole (relay included) is caught by the heartbeat timeout instead: at most HEARTBEAT_TIMEOUT_SECONDS + WATCHDOG_INTERVAL_SECONDS (90 + 30 s by default)",
    };
  });
}

/** The Slack burst on the embedded database and, when there is one, on Postgres. */
export async function benchBurst(): Promise<Record<string, unknown>> {
  const only = process.env.BENCH_BURST_DATABASE;
  const out: Record<string, unknown> = {};
  if (!only || only === "pglite") out.pglite = await benchLoad("pglite");
  if ((!only || only === "postgres") && (await postgresAvailable())) out.postgres = await benchLoad("postgres");
  return out;
}

export async function benchReliability(): Promise<Record<string, unknown>> {
  return { slackBurst: await benchBurst(), steadyState: await benchSteady(), deathNotice: await benchDeathNotice() };
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  const which = process.argv[2];
  const out =
    which === "burst" ? await benchBurst() : which === "steady" ? await benchSteady() : which === "death" ? await benchDeathNotice() : await benchReliability();
  if (which === "burst") {
    // Alone, the burst keeps its own results file (npm run bench puts it in latest.json with the rest).
    fs.mkdirSync(path.join(import.meta.dirname, "results"), { recursive: true });
    const record = { at: new Date().toISOString(), machine: { cpus: os.cpus().length, load1: os.loadavg()[0] }, ...out };
    fs.writeFileSync(path.join(import.meta.dirname, "results", "burst.json"), `${JSON.stringify(record, null, 2)}\n`);
  }
  console.log(JSON.stringify(out, null, 2));
  process.exit(0);
}
