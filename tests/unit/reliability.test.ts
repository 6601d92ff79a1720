import { describe, expect, it } from "vitest";
import { CircuitBreaker } from "../../src/runs/circuit-breaker.ts";
import { describeQueue } from "../../src/runs/queue.ts";
import { slackRequestProblem } from "../../src/integrations/slack/guard.ts";

describe("provider circuit breaker", () => {
  it("opens after the threshold of failures in a row, lets one trial through after the cool-down, closes on success", () => {
    const b = new CircuitBreaker(3, 10_000);
    b.failure("500", 0);
    b.failure("500", 1);
    expect(b.allow(2)).toBe(true);
    expect(b.status(2).state).toBe("closed");
    b.failure("E2B is down", 3);
    expect(b.status(4)).toMatchObject({ state: "open", consecutiveFailures: 3, lastError: "E2B is down" });
    expect(b.allow(5_000)).toBe(false);
    expect(b.describe("e2b", 5_000)).toMatch(/^New sandboxes are paused: the e2b sandbox provider failed 3 times in a row \(last: E2B is down\)\. Trying again at /);
    expect(b.allow(10_003)).toBe(true); // the trial
    expect(b.allow(10_004)).toBe(false); // only one at a time
    b.failure("still down", 10_005);
    expect(b.allow(15_000)).toBe(false); // open again for another cool-down
    expect(b.allow(20_006)).toBe(true);
    b.success();
    expect(b.status().state).toBe("closed");
    expect(b.describe("e2b")).toBeNull();
  });
  it("a success resets the count; a neutral end frees the trial", () => {
    const b = new CircuitBreaker(2, 1000);
    b.failure("x", 0);
    b.success();
    b.failure("x", 1);
    expect(b.status(2).state).toBe("closed");
    b.failure("x", 2);
    expect(b.allow(1003)).toBe(true);
    b.neutral();
    expect(b.allow(1004)).toBe(true);
  });
});

describe("queue position", () => {
  const base = { ahead: 2, active: 1, repoActive: 0, limit: 4, repoLimit: null, repo: "api", providerNote: null };
  it("says what the run waits for, in plain words", () => {
    expect(describeQueue({ ...base, active: 4 })).toMatchObject({ position: 3, waitingFor: "capacity", note: "Queued (position 3): 4 of 4 runs are working; this one starts when one finishes. 2 runs ahead of this one." });
    expect(describeQueue({ ...base, ahead: 0, repoActive: 2, repoLimit: 2 })).toMatchObject({ position: 1, waitingFor: "repo_capacity", note: "Queued (position 1): 2 of 2 runs allowed on api are working; this one starts when one finishes." });
    expect(describeQueue({ ...base, providerNote: "New sandboxes are paused: …" }).waitingFor).toBe("provider");
    expect(describeQueue({ ...base, ahead: 0 })).toMatchObject({ waitingFor: "nothing", note: "Queued (position 1): starting shortly." });
  });
});

describe("Slack request guard", () => {
  const now = 1_800_000_000;
  it("refuses timestamps more than 5 minutes away either way, and JSON bodies that are not objects", () => {
    const h = (ts: number) => ({ "x-slack-request-timestamp": String(ts), "content-type": "application/json" });
    expect(slackRequestProblem(h(now + 301), null, now)?.status).toBe(401);
    expect(slackRequestProblem(h(now - 301), null, now)?.status).toBe(401);
    expect(slackRequestProblem(h(now + 10), Buffer.from("null"), now)?.status).toBe(400);
    expect(slackRequestProblem(h(now), Buffer.from("[1]"), now)?.status).toBe(400);
    expect(slackRequestProblem(h(now), Buffer.from('{"type":"event_callback","event":{"type":"app_mention"}}'), now)).toBeNull();
    expect(slackRequestProblem(h(now), Buffer.from('{"type":"event_callback"}'), now)?.status).toBe(400); // no event object
    expect(slackRequestProblem(h(now), Buffer.from("{broken"), now)).toBeNull(); // Bolt answers that one
  });
});
