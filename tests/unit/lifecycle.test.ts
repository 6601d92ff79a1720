import { decideInput } from "../helpers/decide-input.ts";
import { describe, expect, it } from "vitest";
import { currentAttemptPhases, decideNext } from "../../src/runs/decide.ts";
import { RUN_STATUSES, transition } from "../../src/runs/state-machine.ts";
import { watchdogVerdict } from "../../src/runs/watchdog.ts";

describe("run state machine", () => {
  it("walks the happy path queued → provisioning → running → idle → running → idle → closed", () => {
    const steps = [
      ["queued", "claim", "provisioning"],
      ["provisioning", "sandbox_ready", "running"],
      ["running", "result_delivered", "idle"],
      ["idle", "follow_up", "running"],
      ["idle", "keepalive_expired", "closed"],
    ] as const;
    for (const [from, type, to] of steps) expect(transition(from, { type } as never)).toMatchObject({ ok: true, to });
  });
  it("fails or cancels any active run with its reason; an idle run closes instead", () => {
    for (const s of ["queued", "provisioning", "running"] as const) {
      expect(transition(s, { type: "fail", reason: "boom", code: "agent_died" })).toEqual({ ok: true, to: "failed", reason: "boom", code: "agent_died" });
      expect(transition(s, { type: "cancel", reason: "stop" })).toEqual({ ok: true, to: "cancelled", reason: "stop" });
    }
    expect(transition("idle", { type: "cancel", reason: "stop" })).toMatchObject({ ok: true, to: "closed" });
  });
  it("refuses every transition out of a terminal state", () => {
    for (const s of ["closed", "failed", "cancelled"] as const)
      for (const type of ["claim", "sandbox_ready", "result_delivered", "follow_up", "keepalive_expired", "fail", "cancel"])
        expect(transition(s, { type, reason: "r" } as never).ok).toBe(false);
  });
  it("refuses out-of-order transitions", () => {
    expect(transition("queued", { type: "result_delivered" }).ok).toBe(false);
    expect(transition("running", { type: "claim" }).ok).toBe(false);
    expect(RUN_STATUSES).toHaveLength(7);
  });
});

const limits = { heartbeatTimeoutMs: 90_000, provisionTimeoutMs: 600_000, maxDurationMs: 4 * 3600_000, relayConnectTimeoutMs: 60_000 };
const t0 = new Date("2026-01-01T00:00:00Z");
const at = (s: number) => new Date(t0.getTime() + s * 1000);

describe("watchdog verdict", () => {
  const running = { status: "running", createdAt: t0, statusSince: t0, startedAt: t0, lastHeartbeatAt: t0, opencodeAlive: true };
  it("never fails a run whose process is alive and heartbeats flow, even after 15 minutes without model output", () => {
    expect(watchdogVerdict({ ...running, lastHeartbeatAt: at(15 * 60 - 10) }, at(15 * 60), limits)).toEqual({ verdict: "ok" });
  });
  it("fails a run whose sandbox went silent for 90 s", () => {
    const v = watchdogVerdict({ ...running, lastHeartbeatAt: at(0) }, at(91), limits);
    expect(v).toMatchObject({ verdict: "fail", code: "sandbox_silent" });
    expect((v as { reason: string }).reason).toMatch(/stopped responding/);
  });
  it("says the agent stopped answering when the last heartbeats reported OpenCode down", () => {
    expect(watchdogVerdict({ ...running, opencodeAlive: false }, at(100), limits)).toMatchObject({ code: "agent_unresponsive" });
  });
  it("fails slow provisioning, a relay that never connects, and runs over their maximum duration", () => {
    expect(watchdogVerdict({ ...running, status: "provisioning" }, at(601), limits)).toMatchObject({ code: "provision_timeout" });
    expect(watchdogVerdict({ ...running, status: "provisioning", relayStartedAt: at(0), relayConnected: false, publicUrl: "http://x" }, at(61), limits)).toMatchObject({
      code: "relay_unreachable",
      reason: expect.stringContaining("PUBLIC_URL"),
    });
    expect(watchdogVerdict({ ...running, lastHeartbeatAt: at(4 * 3600) }, at(4 * 3600 + 1), limits)).toMatchObject({ code: "max_duration" });
  });
});

describe("reconciler decisions", () => {
  const base = decideInput(t0);
  const ctx = { now: at(20), limits: { ...limits, maxProvisionAttempts: 3 }, lastPromptSeq: 1 };
  it("delivers when the agent is idle for every prompt, not before", () => {
    expect(decideNext({ ...base, idleInputSeq: 1 }, ctx)).toEqual({ kind: "deliver" });
    expect(decideNext({ ...base, idleInputSeq: 1 }, { ...ctx, lastPromptSeq: 2 })).toEqual({ kind: "none" });
    expect(decideNext({ ...base, idleInputSeq: 1, deliveredInputSeq: 1 }, ctx)).toEqual({ kind: "none" });
  });
  it("resumes an idle run with a new prompt, closes it when the keep-alive ends", () => {
    expect(decideNext({ ...base, status: "idle", deliveredInputSeq: 1 }, { ...ctx, lastPromptSeq: 2 })).toEqual({ kind: "resume" });
    expect(decideNext({ ...base, status: "idle", deliveredInputSeq: 1, keepaliveUntil: at(19) }, ctx)).toEqual({ kind: "close" });
    expect(decideNext({ ...base, status: "idle", deliveredInputSeq: 1, keepaliveUntil: at(21) }, ctx)).toEqual({ kind: "none" });
  });
  it("retries provisioning abandoned by a dead process a bounded number of times", () => {
    const p = { ...base, status: "provisioning", phases: [{ phase: "provision_attempt", at: t0.toISOString() }] };
    expect(decideNext(p, ctx)).toEqual({ kind: "provision" });
    expect(decideNext({ ...p, leaseExpiresAt: at(30) }, ctx)).toEqual({ kind: "none" });
    expect(decideNext({ ...p, attempts: 3 }, ctx)).toMatchObject({ kind: "fail", code: "provision_failed" });
    // Once the relay started, only the watchdog decides.
    expect(decideNext({ ...p, phases: base.phases }, ctx)).toEqual({ kind: "none" });
  });
  it("destroys the sandbox of a finished run once", () => {
    expect(decideNext({ ...base, status: "failed" }, ctx)).toEqual({ kind: "destroy" });
    expect(decideNext({ ...base, status: "failed", sandboxDestroyedAt: at(5) }, ctx)).toEqual({ kind: "none" });
  });
  it("reads the phases of the current provisioning attempt only", () => {
    const phases = [
      { phase: "provision_attempt", at: "1" },
      { phase: "relay_started", at: "2" },
      { phase: "provision_attempt", at: "3" },
    ];
    expect(currentAttemptPhases(phases).map((p) => p.phase)).toEqual(["provision_attempt"]);
  });
});
