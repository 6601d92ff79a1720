/**
 * E2B vs local, measured (called by bench/run.ts): time from run creation to the prompt delivered to OpenCode,
 * per phase (from run.phases), on the fake E2B (real `e2b` SDK, envd over loopback) and on the local provider;
 * and the E2B calls one run costs (control plane + envd), from creation to its sandbox destroyed, plus the calls
 * made while the run sits idle (goal: none — no polling loops against E2B).
 */
import { opencodeBinary } from "../src/sandbox/index.ts";
import { RUN_LABEL } from "../src/sandbox/provider.ts";
import { startFakeE2B, type FakeE2BCall } from "../tests/fakes/e2b/index.ts";
import { scripts, startModelServer } from "../tests/fakes/model-server.ts";
import { makeRepo, startTestServer } from "../tests/helpers/harness.ts";

const REPS = Number(process.env.BENCH_E2B_REPS ?? process.env.BENCH_REPS ?? 3);
const PHASES = ["provisioning", "sandbox_created", "repo_cloned", "opencode_started", "relay_started", "opencode_ready", "prompt_delivered"];
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
};
const round = (n: number) => Math.round(n * 10) / 10;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** "POST /v2/sandboxes", "envd POST /process.Process/Start", ... with ids replaced. */
const callKind = (c: FakeE2BCall) => `${c.plane === "envd" ? "envd " : ""}${c.method} ${c.path.replace(/\/sandboxes\/[a-z0-9]+/, "/sandboxes/:id")}`;

async function measure(provider: "local" | "e2b") {
  const fake = provider === "e2b" ? await startFakeE2B() : null;
  const model = await startModelServer({ handler: scripts.writeFile("bench.txt", "bench\n", "Done.") });
  const repo = makeRepo();
  const env: Record<string, string> = fake
    ? { SANDBOX_PROVIDER: "e2b", E2B_API_KEY: fake.apiKey, E2B_API_URL: fake.apiUrl, E2B_SANDBOX_URL: fake.sandboxUrl, OPENCODE_BIN: opencodeBinary() }
    : {};
  const srv = await startTestServer({ model, repos: { demo: repo.bare }, env });
  const toPrompt: number[] = [];
  const phases: Record<string, number[]> = {};
  const perRun: { api: number; envd: number; kinds: Record<string, number> }[] = [];
  const idleCalls: number[] = [];
  try {
    await sleep(500); // let the reaper's start-up sweep pass
    for (let i = 0; i < REPS; i++) {
      const from = fake?.calls.length ?? 0;
      const { body } = await srv.api("POST", "/api/runs", { repo: "demo", prompt: `bench ${i}` });
      const run = await srv.waitFor(body.id, ["idle", "failed"], 120_000);
      if (run.status !== "idle") throw new Error(`bench run failed: ${run.reason}`);
      const at = (p: string) => Date.parse(run.phases.find((x: { phase: string }) => x.phase === p)?.at ?? "NaN");
      const t0 = Date.parse(run.createdAt);
      toPrompt.push(at("prompt_delivered") - t0);
      let prev = t0;
      for (const p of PHASES) {
        (phases[p] ??= []).push(at(p) - prev);
        prev = at(p);
      }
      // Idle for a while: nothing should talk to E2B (the sandbox is paused; the backend does not poll it).
      await sleep(1500);
      const idleFrom = fake?.calls.length ?? 0;
      await sleep(3000);
      idleCalls.push((fake?.calls.length ?? 0) - idleFrom);
      await srv.api("POST", `/api/runs/${body.id}/stop`);
      const end = Date.now() + 20_000;
      while ((await srv.deckhand.provider.list({ [RUN_LABEL]: body.id })).length && Date.now() < end) await sleep(200);
      if (fake) {
        // The two list calls of the wait loop above are ours, not the run's.
        const calls = fake.calls.slice(from);
        const kinds: Record<string, number> = {};
        for (const c of calls) kinds[callKind(c)] = (kinds[callKind(c)] ?? 0) + 1;
        perRun.push({ api: calls.filter((c) => c.plane === "api").length, envd: calls.filter((c) => c.plane === "envd").length, kinds });
      }
    }
  } finally {
    await srv.close();
    await model.close();
    await fake?.close();
  }
  return {
    runCreatedToPromptDeliveredMsP50: round(median(toPrompt)),
    phasesMsP50: Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, round(median(v))])),
    ...(fake
      ? {
          callsPerRun: {
            controlPlaneP50: median(perRun.map((r) => r.api)),
            envdP50: median(perRun.map((r) => r.envd)),
            byKindLastRun: perRun.at(-1)?.kinds,
            note: "from run creation until its sandbox is gone, incl. the bench's own list calls while waiting for the destroy",
          },
          callsWhileIdleFor3s: idleCalls,
        }
      : {}),
  };
}

export async function benchE2B(): Promise<Record<string, unknown>> {
  const local = await measure("local");
  const e2b = await measure("e2b");
  return {
    repetitions: REPS,
    local,
    e2bFake: e2b,
    e2bOverheadMsP50: round((e2b.runCreatedToPromptDeliveredMsP50 as number) - (local.runCreatedToPromptDeliveredMsP50 as number)),
    goal: "no polling loops against E2B: zero calls while a run is idle; a handful of control-plane calls per run",
    met: (e2b.callsWhileIdleFor3s as number[]).every((n) => n === 0),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await benchE2B(), null, 2));
  process.exit(0);
}
