/** A sandbox paused while its run was idle sends no heartbeats: resuming must not look like a silent sandbox. */
import { describe, expect, it } from "vitest";
import { watchdogVerdict } from "../../src/runs/watchdog.ts";

const limits = { heartbeatTimeoutMs: 90_000, provisionTimeoutMs: 600_000, maxDurationMs: 4 * 3600_000, relayConnectTimeoutMs: 60_000 };

describe("heartbeat clock after an idle pause", () => {
  const now = new Date("2026-01-01T12:00:00Z");
  const ago = (s: number) => new Date(now.getTime() - s * 1000);

  it("a run that re-entered running 10 s ago, last heartbeat 20 min ago (paused while idle), is fine", () => {
    const v = watchdogVerdict({ status: "running", createdAt: ago(3600), statusSince: ago(10), startedAt: ago(1800), lastHeartbeatAt: ago(1200), opencodeAlive: true }, now, limits);
    expect(v).toEqual({ verdict: "ok" });
  });

  it("but the same run silent for longer than the timeout since it resumed is failed", () => {
    const v = watchdogVerdict({ status: "running", createdAt: ago(3600), statusSince: ago(120), startedAt: ago(1800), lastHeartbeatAt: ago(1200), opencodeAlive: true }, now, limits);
    expect(v).toMatchObject({ verdict: "fail", code: "sandbox_silent" });
  });
});
