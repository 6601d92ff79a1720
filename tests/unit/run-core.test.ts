/** Pure decisions of the run core: retry backoff and its cap, giving up, sandbox ownership across hosts. */
import { describe, expect, it } from "vitest";
import { afterDelivery, afterProvisionFailure, decideNext, idleOwesResult } from "../../src/runs/decide.ts";
import { columnsFor } from "../../src/runs/run-changes.ts";
import { runRow } from "../helpers/run-row.ts";
import { decideInput } from "../helpers/decide-input.ts";
import { hostGoneReason, sandboxOwnership } from "../../src/runs/hosts.ts";
import { afterFailure, backoffDelayMs, retryPending } from "../../src/runs/retry.ts";
import { backoffMs } from "../../src/notify/outbox.ts";

const t0 = new Date("2026-01-01T00:00:00Z");
const at = (s: number) => new Date(t0.getTime() + s * 1000);

describe("retry backoff", () => {
  const p = { baseMs: 2000, capMs: 300_000, jitter: 0 };
  it("doubles per failure from the base and never exceeds the cap, even after very many failures", () => {
    expect([1, 2, 3, 4].map((a) => backoffDelayMs(a, p))).toEqual([2000, 4000, 8000, 16000]);
    expect(backoffDelayMs(9, p)).toBe(300_000);
    expect(backoffDelayMs(10_000, p)).toBe(300_000);
    // With jitter the spread stays within ±10 % and under the cap.
    expect(backoffDelayMs(3, { ...p, jitter: 0.2 }, 0)).toBe(7200);
    expect(backoffDelayMs(3, { ...p, jitter: 0.2 }, 0.999)).toBeLessThanOrEqual(8800);
    expect(backoffDelayMs(50, { ...p, jitter: 0.2 }, 0.999)).toBe(300_000);
  });
  it("outbox messages back off to at most 30 s by default", () => {
    expect(backoffMs(1, undefined, 0.5)).toBe(500);
    expect(backoffMs(7, undefined, 0.999)).toBe(30_000);
    expect(backoffMs(40, 5000, 0.999)).toBe(5000);
  });
  it("after a failure: retry at a later time, or give up after the bounded number of tries with the last error", () => {
    const v = afterFailure({ attempts: 2, maxAttempts: 5, error: "git bundle failed: not a git repository", what: "Collecting and pushing the result", now: t0 }, p);
    expect(v).toEqual({ kind: "retry", attempts: 2, at: at(4) });
    const g = afterFailure({ attempts: 5, maxAttempts: 5, error: "git bundle failed: not a git repository", what: "Collecting and pushing the result", now: t0 }, p);
    expect(g).toEqual({ kind: "give_up", attempts: 5, reason: "Collecting and pushing the result failed 5 times; giving up. Last error: git bundle failed: not a git repository" });
    expect(retryPending(at(4), at(3))).toBe(true);
    expect(retryPending(at(4), at(4))).toBe(false);
    expect(retryPending(null, at(4))).toBe(false);
  });
});

describe("several hosts", () => {
  const alive = new Set(["a", "b"]);
  it("who may act on a run's sandbox", () => {
    expect(sandboxOwnership(null, "a", alive)).toBe("any");
    expect(sandboxOwnership("a", "a", alive)).toBe("mine");
    expect(sandboxOwnership("b", "a", alive)).toBe("other_alive");
    expect(sandboxOwnership("c", "a", alive)).toBe("owner_gone");
  });

  const limits = { heartbeatTimeoutMs: 90_000, provisionTimeoutMs: 600_000, maxDurationMs: 4 * 3600_000, relayConnectTimeoutMs: 60_000, maxProvisionAttempts: 3 };
  const running = decideInput(t0, { idleInputSeq: 1, retryAt: null, sandboxHost: "b" });
  const ctx = (me: string) => ({ now: at(20), limits, lastPromptSeq: 1, hosts: { me, alive } });

  it("only the sandbox's host delivers; a gone host's runs fail with a plain reason and their sandboxes are let go", () => {
    expect(decideNext(running, ctx("b"))).toEqual({ kind: "deliver" });
    expect(decideNext(running, ctx("a"))).toEqual({ kind: "none" });
    expect(decideNext({ ...running, sandboxHost: "gone" }, ctx("a"))).toEqual({ kind: "fail", code: "host_gone", reason: hostGoneReason("gone") });
    expect(hostGoneReason("gone")).toMatch(/^The Deckhand server that held this run's sandbox \(host gone\) stopped/);
    expect(decideNext({ ...running, status: "idle", sandboxHost: "gone" }, ctx("a"))).toMatchObject({ kind: "fail", code: "host_gone" });
    const failed = { ...running, status: "failed" };
    expect(decideNext(failed, ctx("b"))).toEqual({ kind: "destroy" });
    expect(decideNext(failed, ctx("a"))).toEqual({ kind: "none" });
    expect(decideNext({ ...failed, sandboxHost: "gone" }, ctx("a"))).toEqual({ kind: "forget_sandbox" });
    // Remote sandboxes (E2B) have no host: anyone acts.
    expect(decideNext({ ...running, sandboxHost: null, sandboxProvider: "e2b" }, ctx("a"))).toEqual({ kind: "deliver" });
    // The watchdog's verdict needs no sandbox: any host fails a silent run.
    expect(decideNext({ ...running, lastHeartbeatAt: t0 }, { ...ctx("a"), now: at(200) })).toMatchObject({ kind: "fail", code: "sandbox_silent" });
  });

  it("a provisioning that never started its relay is started again by any host once its retry time has come", () => {
    const prov = { ...running, status: "provisioning", phases: [{ phase: "provision_attempt", at: t0.toISOString() }], idleInputSeq: null, lastEventSeq: 0, sandboxHost: "gone" };
    expect(decideNext(prov, ctx("a"))).toEqual({ kind: "provision" });
    expect(decideNext({ ...prov, retryAt: at(30) }, ctx("a"))).toEqual({ kind: "none" });
    expect(decideNext({ ...prov, retryAt: at(20) }, ctx("a"))).toEqual({ kind: "provision" });
  });

  it("a failed delivery waits for its retry time (its own column), not for the lease", () => {
    expect(decideNext({ ...running, retryAt: at(25) }, ctx("b"))).toEqual({ kind: "none" });
    expect(decideNext({ ...running, retryAt: at(19) }, ctx("b"))).toEqual({ kind: "deliver" });
  });
});

describe("decisions made once, in the pure core", () => {
  it("an idle report owes a result only when the agent has seen every prompt queued so far", () => {
    expect(idleOwesResult(2, 2)).toBe(true);
    expect(idleOwesResult(3, 2)).toBe(true);
    // A follow-up arrived while the agent went idle on the first prompt: it keeps working.
    expect(idleOwesResult(1, 2)).toBe(false);
  });

  it("a failed provisioning is retried with a growing pause while retryable and under the limit, then fails with its reason", () => {
    const f = { maxAttempts: 3, retryable: true, code: "sandbox_unavailable" as const, message: "E2B did not answer in time", now: t0 };
    expect(afterProvisionFailure({ ...f, attempts: 1 })).toEqual({ kind: "retry", at: at(2) });
    expect(afterProvisionFailure({ ...f, attempts: 2 })).toEqual({ kind: "retry", at: at(4) });
    expect(afterProvisionFailure({ ...f, attempts: 3 })).toEqual({ kind: "fail", code: "sandbox_unavailable", reason: "E2B did not answer in time" });
    expect(afterProvisionFailure({ ...f, attempts: 1, retryable: false, code: "clone_failed", message: "Cloning demo failed" })).toEqual({ kind: "fail", code: "clone_failed", reason: "Cloning demo failed" });
    // The pause is capped (30 s) however many attempts are allowed.
    expect(afterProvisionFailure({ ...f, attempts: 40, maxAttempts: 100 })).toEqual({ kind: "retry", at: at(30) });
  });

  it("after a delivery: an agent error with no change on a first result fails the run; otherwise the run goes idle", () => {
    const err = { message: "The model provider rejected the API key", code: "model_auth" };
    expect(afterDelivery({ error: err, filesChanged: [] }, 0)).toEqual({ kind: "fail", code: "model_auth", reason: err.message });
    // Something changed, or an earlier result was delivered: the run is kept for follow-ups.
    expect(afterDelivery({ error: err, filesChanged: [{ path: "a", additions: 1, deletions: 0 }] }, 0)).toEqual({ kind: "idle" });
    expect(afterDelivery({ error: err, filesChanged: [] }, 1)).toEqual({ kind: "idle" });
    // Over budget is not a failure: `budget=+5` continues it.
    expect(afterDelivery({ error: { message: "Budget reached", code: "over_budget" }, filesChanged: [] }, 0)).toEqual({ kind: "idle" });
    // An agent's own code that is not ours becomes agent_error.
    expect(afterDelivery({ error: { message: "odd", code: "constructor" }, filesChanged: [] }, 0)).toEqual({ kind: "fail", code: "agent_error", reason: "odd" });
    expect(afterDelivery({ error: null, filesChanged: [] }, 0)).toEqual({ kind: "idle" });
  });
});

describe("each write records its own columns", () => {
  const run = runRow(t0, { id: "r-1", status: "running", repo: "demo", branch: "b", prompt: "p", title: "t", source: "api", idleInputSeq: 2, keepaliveUntil: at(60) });
  it("a transition writes the data of its intent and nothing else", () => {
    expect(columnsFor({ type: "claim" }, run, at(1))).toEqual({});
    expect(columnsFor({ type: "sandbox_ready" }, { ...run, startedAt: null }, at(1))).toEqual({ startedAt: at(1) });
    expect(columnsFor({ type: "sandbox_ready" }, { ...run, startedAt: t0 }, at(1))).toEqual({ startedAt: t0 });
    expect(columnsFor({ type: "follow_up" }, run, at(1))).toEqual({ idleInputSeq: null, keepaliveUntil: null });
    const delivery = { result: { summary: "ok", filesChanged: [], additions: 0, deletions: 0, branch: "b", commit: null, pushed: false, usage: { input: 0, output: 0, reasoning: 0, cacheRead: 0, cacheWrite: 0, cost: 0 } }, diff: "" };
    expect(columnsFor({ type: "result_delivered", delivery, keepaliveUntil: at(90), deliveredInputSeq: 2 }, run, at(1))).toEqual({ result: delivery.result, diff: "", keepaliveUntil: at(90), deliveredInputSeq: 2 });
    expect(columnsFor({ type: "fail", reason: "x", code: "agent_died" }, run, at(1))).toEqual({});
    expect(columnsFor({ type: "cancel", reason: "stop" }, run, at(1))).toEqual({});
  });
});
