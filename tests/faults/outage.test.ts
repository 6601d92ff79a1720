/**
 * After an outage, results land fast: Slack and Linear answer 500 while two runs make progress and finish; when
 * they answer again, each owed final result lands within 10 s, and the stale progress owed from the outage is
 * dropped rather than sent first (it used to hold the final back behind its own growing backoff). Slack's replies
 * without a run (help, "which repo?") asked for during the outage arrive after it.
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
    // Replies without a run go through the outbox too: asked for during the outage, each arrives once afterwards.
    expect(f.replies.help).toHaveLength(1);
    expect(f.replies.help[0]).toMatch(/Mention me with a task/i);
    // So are the reactions acknowledging a person's message: a reply steering the run during the outage gets its 📥.
    expect(f.steerAcknowledged).toEqual(["inbox_tray"]);
    expect(f.replies.whichRepo).toEqual(["Which repo should I work in? Reply in this thread with `repo=<name>` (or mention me again with it). Allowed: `demo`."]);
  }, 120_000);
});
