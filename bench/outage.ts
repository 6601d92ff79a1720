/**
 * After an outage, results land fast: time from Slack's and Linear's recovery (both answering 500 for
 * BENCH_OUTAGE_SECONDS, default 72 s as in issue #15) to the last owed final result. Goal: within 10 s.
 * Run on its own with `npx tsx bench/outage.ts`; `npm run bench` includes it unless BENCH_SKIP_OUTAGE=1.
 */
import { runOutageScenario } from "../tests/faults/outage-scenario.ts";

export async function benchOutage() {
  const outageMs = Number(process.env.BENCH_OUTAGE_SECONDS ?? 72) * 1000;
  const f = await runOutageScenario({ outageMs, log: (s) => console.error(`[bench outage] ${s}`) });
  const last = Math.max(f.slackFinalAfterRecoveryMs, f.linearResponseAfterRecoveryMs);
  return {
    outageSeconds: Math.round(f.outageMs / 1000),
    slackFinalAfterRecoveryMs: f.slackFinalAfterRecoveryMs,
    linearResponseAfterRecoveryMs: f.linearResponseAfterRecoveryMs,
    lastFinalAfterRecoveryMs: last,
    staleProgressQueuedDuringOutage: f.staleProgressAtRecovery,
    staleProgressSent: f.staleProgressSent,
    requestsRefusedDuringOutage: f.refused,
    goal: "every owed final result within 10 s of the surface answering again",
    met: last <= 10_000 && f.staleProgressSent === 0,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await benchOutage(), null, 2));
  process.exit(0);
}
