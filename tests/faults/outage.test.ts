/**
 * After an outage, results land fast: Slack and Linear answer 500 while two runs make progress and finish; when
 * they answer again, each owed final result lands within 10 s, and the stale progress owed from the outage is
 * dropped rather than sent first (it used to hold the final back behind its own growing backoff).
 */
import { describe, expect, it } from "vitest";
import { runOutageScenario } from "./outage-scenario.ts";

describe("surfaces recovering from an outage", () => {
  it("Slack and Linear answer 500 for 22 s, then recover: both finals within 10 s, no stale progress before them", async () => {
    const f = await runOutageScenario({ outageMs: 22_000, log: (s) => console.log(`[outage] ${s}`) });
    console.log(`[outage] ${JSON.stringify(f)}`);
    // The outage was real: both surfaces refused requests, and progress was owed when they came back.
    expect(f.refused.slack).toBeGreaterThan(2);
    expect(f.refused.linear).toBeGreaterThan(2);
    expect(f.staleProgressAtRecovery).toBeGreaterThan(0);
    expect(f.slackFinalAfterRecoveryMs).toBeLessThan(10_000);
    expect(f.linearResponseAfterRecoveryMs).toBeLessThan(10_000);
    expect(f.staleProgressSent).toBe(0);
    expect(f.progressSentBeforeFinal).toEqual({ slack: 0, linear: 0 });
  }, 120_000);
});
