/**
 * Idle costs almost nothing (issue #15): memory held by an idle local run (sum of the RSS of its host processes:
 * OpenCode, the relay, the forwarder, bubblewrap, pasta, nsenter) with LOCAL_SUSPEND_WHEN_IDLE on and off, and
 * what suspension adds to a follow-up: time from posting it to the model receiving it, p50 over a few follow-ups,
 * suspended minus kept running. Goal: under 20 MB per idle local run.
 * Run on its own with `npx tsx bench/idle.ts` (writes bench/results/idle.json); `npm run bench` includes it
 * unless BENCH_SKIP_IDLE=1.
 */
import fs from "node:fs";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { localSandboxRoot } from "../src/sandbox/local/plan.ts";
import type { ModelHandler } from "../tests/fakes/model-server.ts";
import { makeRepo, startTestServer, type TestServer } from "../tests/helpers/harness.ts";
import { sandboxHostProcesses } from "../tests/helpers/sandbox-procs.ts";

const FOLLOW_UPS = Number(process.env.BENCH_IDLE_FOLLOW_UPS ?? 3);
const SETTLE_MS = 3_000;
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]! : NaN;
};
const mb = (kb: number) => Math.round((kb / 1024) * 10) / 10;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(fn: () => Promise<T | undefined | false> | T | undefined | false, what: string, ms = 180_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

// Every turn writes a file named after the last user text, then says it is done.
const handler: ModelHandler = (req) => {
  if (req.lastRole === "tool") return { text: "Done." };
  const last = req.userTexts.at(-1) ?? "";
  return { toolCalls: [{ name: "write", arguments: { filePath: `${last.replace(/[^a-z0-9]+/gi, "-").toLowerCase()}.txt`, content: `${last}\n` } }] };
};

/** Waits until the run is idle with `inputs` delivered and (when suspending) its sandbox paused, then measures. */
async function idleMemory(srv: TestServer, runId: string, inputs: number, suspend: boolean) {
  await until(async () => {
    const r = (await srv.api("GET", `/api/runs/${runId}`)).body;
    if (r.status === "failed") throw new Error(`run failed: ${r.reason}`);
    return r.status === "idle" && r.result?.filesChanged?.length === inputs;
  }, "the run to be idle");
  const row = (await srv.deckhand.store.get(runId))!;
  if (suspend) await until(async () => (await srv.deckhand.provider.list({ deckhandRunId: runId }))[0]?.state === "paused", "the sandbox to be suspended");
  else await sleep(SETTLE_MS);
  const dir = path.join(localSandboxRoot(srv.dataDir, process.getuid!()), row.sandboxId!);
  const procs = sandboxHostProcesses(dir, runId);
  return { rssKb: procs.reduce((a, p) => a + p.rssKb, 0), processes: procs.map((p) => p.comm) };
}

async function scenario(suspend: boolean) {
  const srv = await startTestServer({ repos: { demo: makeRepo().bare }, handler, env: { LOCAL_SUSPEND_WHEN_IDLE: String(suspend), RUN_KEEPALIVE_SECONDS: "3600" } });
  try {
    const { body } = await srv.api("POST", "/api/runs", { repo: "demo", prompt: "first task" });
    const held = [await idleMemory(srv, body.id, 1, suspend)];
    const followUpMs: number[] = [];
    for (let i = 1; i <= FOLLOW_UPS; i++) {
      const text = `follow up ${i}`;
      const t = performance.now();
      if ((await srv.api("POST", `/api/runs/${body.id}/inputs`, { text })).status !== 202) throw new Error("follow-up refused");
      await until(() => srv.model.requests.some((r) => r.userTexts.at(-1) === text), "the follow-up to reach the model");
      followUpMs.push(performance.now() - t);
      held.push(await idleMemory(srv, body.id, 1 + i, suspend));
    }
    const rss = held.map((h) => h.rssKb);
    return {
      heldPerIdleRunMB: { p50: mb(pct(rss, 50)), max: mb(Math.max(...rss)) },
      processesWhileIdle: held.at(-1)!.processes,
      followUpToModelMs: { p50: Math.round(pct(followUpMs, 50)), all: followUpMs.map(Math.round) },
    };
  } finally {
    await srv.close();
  }
}

export async function benchIdle() {
  const kept = await scenario(false);
  const suspended = await scenario(true);
  const held = suspended.heldPerIdleRunMB.p50;
  return {
    followUps: FOLLOW_UPS,
    keptRunning: kept,
    suspended,
    memorySavedPerIdleRunMB: Math.round((kept.heldPerIdleRunMB.p50 - held) * 10) / 10,
    followUpExtraStartMs: suspended.followUpToModelMs.p50 - kept.followUpToModelMs.p50,
    goal: "under 20 MB held per idle local run",
    met: held < 20,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = { at: new Date().toISOString(), ...(await benchIdle()) };
  fs.mkdirSync(path.join(import.meta.dirname, "results"), { recursive: true });
  fs.writeFileSync(path.join(import.meta.dirname, "results", "idle.json"), `${JSON.stringify(out, null, 2)}\n`);
  console.log(JSON.stringify(out, null, 2));
  process.exit(0);
}
