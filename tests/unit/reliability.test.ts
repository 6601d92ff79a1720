import { describe, expect, it } from "vitest";
import { type BreakerRow, describeBreaker, evaluateBreaker, justOpened } from "../../src/runs/circuit-breaker.ts";
import { describeQueue } from "../../src/runs/queue.ts";
import { parseSlackBody, retryOf, timestampProblem } from "../../src/integrations/slack/guard.ts";

describe("provider circuit breaker (pure evaluation of its shared row)", () => {
  const cfg = { threshold: 3, cooldownMs: 10_000 };
  const at = (ms: number) => new Date(ms);
  const row = (o: Partial<BreakerRow> = {}): BreakerRow => ({ consecutiveFailures: 0, lastError: null, openedAt: null, trialUntil: null, ...o });

  it("closed without a row or below the threshold; open for the cool-down; then half-open with one trial at a time", () => {
    expect(evaluateBreaker(null, at(0), cfg)).toEqual({ state: "closed", consecutiveFailures: 0, lastError: null, retryAt: null, mayTry: true });
    expect(evaluateBreaker(row({ consecutiveFailures: 2, lastError: "500" }), at(5), cfg)).toMatchObject({ state: "closed", consecutiveFailures: 2, mayTry: true });
    const opened = row({ consecutiveFailures: 3, lastError: "E2B is down", openedAt: at(1_000) });
    const open = evaluateBreaker(opened, at(5_000), cfg);
    expect(open).toMatchObject({ state: "open", consecutiveFailures: 3, lastError: "E2B is down", retryAt: at(11_000).toISOString(), mayTry: false });
    expect(describeBreaker(open, "e2b")).toMatch(/^New sandboxes are paused: the e2b sandbox provider failed 3 times in a row \(last: E2B is down\)\. Trying again at 00:00:11 UTC\.$/);
    expect(evaluateBreaker(opened, at(11_000), cfg)).toMatchObject({ state: "half_open", mayTry: true });
    expect(describeBreaker(evaluateBreaker(opened, at(11_000), cfg), "e2b")).toMatch(/Trying again now\.$/);
    // A trial in flight holds the slot until it ends or its time is up (a process that died mid-trial).
    const trial = { ...opened, trialUntil: at(20_000) };
    expect(evaluateBreaker(trial, at(12_000), cfg)).toMatchObject({ state: "half_open", mayTry: false });
    expect(evaluateBreaker(trial, at(20_000), cfg)).toMatchObject({ state: "half_open", mayTry: true });
    expect(describeBreaker(evaluateBreaker(row({ consecutiveFailures: 1 }), at(0), cfg), "e2b")).toBeNull();
  });

  it("exactly the failure that reaches the threshold opens it (once, whichever process counted it)", () => {
    expect([1, 2, 3, 4, 5].map((n) => justOpened(n, cfg))).toEqual([false, false, true, false, false]);
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
  const problem = (type: string, text: string) => {
    const p = parseSlackBody(type, text);
    return "problem" in p ? p.problem.status : null;
  };
  it("refuses timestamps more than 5 minutes away either way, and bodies Bolt could not read", () => {
    const h = (ts: string | number) => ({ "x-slack-request-timestamp": String(ts) });
    expect(timestampProblem(h(now + 301), now)?.status).toBe(401);
    expect(timestampProblem(h(now - 301), now)?.status).toBe(401);
    expect(timestampProblem(h("1e9"), now)?.status).toBe(401);
    expect(timestampProblem(h(now - 10), now)).toBeNull();
    expect(timestampProblem({}, now)).toBeNull(); // left to the signature check
    const json = "application/json";
    expect(problem(json, "null")).toBe(400);
    expect(problem(json, "[1]")).toBe(400);
    expect(problem(json, '{"type":"event_callback","event":{"type":"app_mention"}}')).toBeNull();
    expect(problem(json, '{"type":"event_callback"}')).toBe(400); // no event object
    expect(problem(json, '{"type":"event_callback","event":{"type":7}}')).toBe(400);
    expect(problem(json, "{broken")).toBe(400);
    expect(problem("text/xml", "<a/>")).toBe(415);
    const form = "application/x-www-form-urlencoded; charset=utf-8";
    expect(problem(form, `payload=${encodeURIComponent("[1]")}`)).toBe(400);
    expect(parseSlackBody(form, `payload=${encodeURIComponent('{"type":"block_actions","team":{"id":"T1"}}')}`)).toEqual({ kind: "form", body: { type: "block_actions", team: { id: "T1" } } });
    // What Bolt routes by must be there (its buildSource reads it unchecked): said in words, naming the field.
    const said = (type: string, text: string) => {
      const p = parseSlackBody(type, text);
      return "problem" in p ? p.problem.error : null;
    };
    expect(said(form, `payload=${encodeURIComponent('{"type":"block_actions"}')}`)).toBe("payload: it has neither team nor user");
    expect(said(form, `payload=${encodeURIComponent('{"type":"view_submission","user":{"id":"U1"}}')}`)).toBe("view: a modal's payload must have its view");
    expect(said(json, '{"type":"event_callback","event":"x"}')).toBe("event: expected object, received string");
    expect(said(json, '{"type":"event_callback","event":{"type":"app_mention"},"authorizations":[1]}')).toBe("authorizations.0: expected record, received number");
    // A slash command without `text` (Slack always sends it; a hostile client need not) reads as an empty one.
    expect(parseSlackBody(form, "command=%2Fdeckhand&user_id=U1")).toEqual({ kind: "form", body: { command: "/deckhand", user_id: "U1", text: "" } });
    const command = parseSlackBody(form, "command=%2Fdeckhand&text=status&__proto__=x");
    expect(command).toMatchObject({ kind: "form", body: { command: "/deckhand", text: "status" } });
    expect(Object.getPrototypeOf(("body" in command && command.body) || {})).toBe(Object.prototype);
  });
  it("reads Slack's retry headers, bounded", () => {
    expect(retryOf({ "x-slack-retry-num": "2", "x-slack-retry-reason": "http_timeout" })).toEqual({ retryNum: 2, retryReason: "http_timeout" });
    expect(retryOf({ "x-slack-retry-num": "-1" })).toEqual({});
    expect(retryOf({})).toEqual({});
  });
});
