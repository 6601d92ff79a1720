/** The budget stop and the gateway's usage, as Slack and Linear show them (pure renderers). */
import { describe, expect, it } from "vitest";
import { digest } from "../../src/events/fold.ts";
import { responseBody } from "../../src/integrations/linear/describe-result.ts";
import { finalContent } from "../../src/integrations/slack/messages.ts";
import { runView } from "../../src/runs/run-view.ts";
import { runRow } from "../helpers/run-row.ts";

const message = "Budget reached: this run spent $5.02 of its $5.00 limit. To continue, reply to this run with budget=+5 (adds $5 to its limit).";
const at = new Date("2026-12-01T10:00:00Z");
const row = runRow(at, {
  id: "r-budget",
  status: "idle",
  repo: "demo",
  branch: "deckhand/x",
  prompt: "p",
  title: "t",
  source: "slack",
  // Measured by the gateway: 1000 in, 200 out, $5.02.
  modelRequests: 2,
  usageInput: 1000,
  usageOutput: 200,
  usageCostMicros: 5_020_000,
  result: {
    summary: "Halfway there.",
    filesChanged: [{ path: "a.ts", additions: 1, deletions: 0 }],
    additions: 1,
    deletions: 0,
    branch: "deckhand/x",
    pushed: true,
    usage: { input: 1000, output: 200, reasoning: 0, cacheRead: 0, cacheWrite: 0, cost: 5.02 },
    error: { message, code: "over_budget" },
  },
});

describe("surfaces show the budget stop and the measured usage", () => {
  it("Slack's final message", () => {
    const v = runView(row, digest([]), "http://x/r/tok", at);
    expect(v.usage).toMatchObject({ input: 1000, output: 200, cost: 5.02 });
    const text = JSON.stringify(finalContent(v).blocks);
    expect(text).toContain("Budget reached: this run spent $5.02 of its $5.00 limit");
    expect(text).toContain("budget=+5");
    expect(text).toContain("1.2k tokens (1.0k in, 200 out)");
    expect(text).toContain("$5.02");
  });
  it("Linear's response", () => {
    const body = responseBody(row.result as never, "http://x/r/tok");
    expect(body).toContain(`⚠️ ${message}`);
    expect(body).toContain("Usage: 1200 tokens (1000 in, 200 out), $5.02");
  });
});
