/** The run's vocabulary, defined once: status groups, and failure reasons with hints that every surface shows alike. */
import { describe, expect, it } from "vitest";
import { summary } from "../../src/cli/progress.ts";
import { digest } from "../../src/events/fold.ts";
import { errorBody } from "../../src/integrations/linear/describe-result.ts";
import { failureReason } from "../../src/integrations/slack/messages.ts";
import { asFailureCode, describeFailure, FAILURES, failureInfo, isActive, isLive, isSettled, isTerminal, isWorking, RUN_STATUSES } from "../../src/runs/model.ts";
import { runView } from "../../src/runs/run-view.ts";
import { renderHead } from "../../src/web/run-page.ts";
import { runRow } from "../helpers/run-row.ts";

const t0 = new Date("2026-01-01T00:00:00Z");

describe("status groups", () => {
  it("each status sits in the groups its name says; the terminal ones in no live or active group", () => {
    const groups = Object.fromEntries(RUN_STATUSES.map((s) => [s, [isActive, isLive, isWorking, isSettled, isTerminal].map((f) => (f(s) ? 1 : 0)).join("")]));
    expect(groups).toEqual({ queued: "10000", provisioning: "11100", running: "11100", idle: "01010", closed: "00011", failed: "00011", cancelled: "00011" });
    expect(isTerminal("constructor")).toBe(false);
  });
});

describe("failure catalogue", () => {
  it("gives a plain reason and what to do; the run's own reason wins; unknown and prototype names have no entry", () => {
    expect(describeFailure({ status: "failed", reason: null, failureCode: "model_auth" })).toEqual({ reason: FAILURES.model_auth.reason, hint: "Check the model API key configured on the Deckhand server." });
    expect(describeFailure({ status: "failed", reason: "E2B said no", failureCode: "sandbox_quota" })).toEqual({ reason: "E2B said no", hint: null });
    expect(describeFailure({ status: "cancelled", reason: null, failureCode: null })).toEqual({ reason: "The run was stopped", hint: null });
    for (const code of ["constructor", "__proto__", "toString", "weird"]) {
      expect(failureInfo(code)).toBeUndefined();
      expect(asFailureCode(code)).toBe("agent_error");
    }
    expect(asFailureCode("model_rate_limit")).toBe("model_rate_limit");
  });

  it("Slack, Linear, the API, the CLI and the run page show the same reason and hint for a failure code", () => {
    const run = runRow(t0, { id: "r-1", status: "failed", repo: "demo", branch: "b", prompt: "p", title: "t", source: "api", failureCode: "relay_unreachable", finishedAt: t0 });
    const view = { ...runView(run, digest([]), "https://deckhand.test/r/tok", t0), timeline: [] };
    const { reason, hint } = describeFailure(view);
    expect(reason).toBe("The sandbox could not reach Deckhand");
    expect(hint).toMatch(/PUBLIC_URL/);
    expect(view.hint).toBe(hint);
    expect(failureReason(view)).toEqual({ reason, hint });
    expect(errorBody(run, { lastError: null }, view.url)).toContain(`The run failed: ${reason}\n\n${hint}`);
    expect(summary(view).split("\n").slice(0, 2)).toEqual([`✘ Failed (failed) in 0s: ${reason}`, hint]);
    expect(renderHead(view, t0)).toContain(`${reason} <span class="muted">(relay_unreachable)</span><br>Check that PUBLIC_URL is reachable`);
  });
});
