/** The gateway's decisions, without I/O: directives, usage parsing, prices, retries, budgets. */
import { describe, expect, it } from "vitest";
import { checkBudget } from "../../src/gateway/budget.ts";
import { checkModel, parseDirectives } from "../../src/gateway/directives.ts";
import { costMicros, parsePrice, priceFor } from "../../src/gateway/prices.ts";
import { parseRetryAfter, retryDelay } from "../../src/gateway/retry.ts";
import { UsageTap } from "../../src/gateway/usage.ts";

const enc = (s: string) => new TextEncoder().encode(s);

describe("directives", () => {
  it("takes model= and budget=+N out of the text", () => {
    expect(parseDirectives("fix the bug model=claude-haiku-4-5 please")).toEqual({ text: "fix the bug please", model: "claude-haiku-4-5", problems: [] });
    expect(parseDirectives("budget=+5")).toEqual({ text: "", budgetUsd: 5, problems: [] });
    expect(parseDirectives("go on budget=+2.5 budget=+1")).toMatchObject({ text: "go on", budgetUsd: 3.5 });
  });
  it("leaves words that merely contain the directive alone and reports malformed ones", () => {
    expect(parseDirectives("set mymodel=x in config").model).toBeUndefined();
    expect(parseDirectives("budget=5").problems[0]).toMatch(/budget=\+5/);
    expect(parseDirectives("budget=+99999999").problems).toHaveLength(1);
    expect(parseDirectives("model=").problems).toHaveLength(1);
  });
  it("lists the allowed models for an unknown one", () => {
    expect(checkModel("gpt-9", ["m", "m2"])).toBe('Unknown model "gpt-9". Allowed models: m, m2');
    expect(checkModel("m2", ["m", "m2"])).toBeNull();
  });
});

describe("usage tap", () => {
  const feed = (tap: UsageTap, s: string, step: number) => {
    for (let i = 0; i < s.length; i += step) tap.push(enc(s.slice(i, i + step)));
    return tap.end();
  };
  it("reads OpenAI chat streaming usage whatever the chunk boundaries", () => {
    const sse =
      'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n' +
      'data: {"choices":[],"usage":{"prompt_tokens":120,"completion_tokens":7,"prompt_tokens_details":{"cached_tokens":20}}}\n\ndata: [DONE]\n\n';
    for (const step of [1, 3, 17, sse.length]) expect(feed(new UsageTap(true), sse, step)).toEqual({ input: 100, output: 7, cacheRead: 20, cacheWrite: 0 });
  });
  it("reads Anthropic message_start + message_delta", () => {
    const sse =
      'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":50,"cache_creation_input_tokens":10,"cache_read_input_tokens":5,"output_tokens":1}}}\n\n' +
      'event: message_delta\ndata: {"type":"message_delta","delta":{},"usage":{"output_tokens":42}}\n\n';
    expect(feed(new UsageTap(true), sse, 9)).toEqual({ input: 50, output: 42, cacheRead: 5, cacheWrite: 10 });
  });
  it("reads Responses completion events and plain JSON answers", () => {
    const sse = 'data: {"type":"response.completed","response":{"usage":{"input_tokens":30,"output_tokens":4,"input_tokens_details":{"cached_tokens":10}}}}\n\n';
    expect(feed(new UsageTap(true), sse, 5)).toEqual({ input: 20, output: 4, cacheRead: 10, cacheWrite: 0 });
    expect(feed(new UsageTap(false), '{"usage":{"prompt_tokens":3,"completion_tokens":2}}', 4)).toEqual({ input: 3, output: 2, cacheRead: 0, cacheWrite: 0 });
  });
  it("ignores garbage and negative numbers", () => {
    const tap = new UsageTap(true);
    expect(feed(tap, 'data: {"usage":{"prompt_tokens":-5,"completion_tokens":"x"}}\ndata: {not json usage\n', 4)).toEqual({ input: 0, output: 0, cacheRead: 0, cacheWrite: 0 });
  });
});

describe("prices", () => {
  it("costs in whole micro-dollars, by override, exact name or longest known prefix", () => {
    expect(costMicros({ input: 1000, output: 100, cacheRead: 0, cacheWrite: 0 }, parsePrice("3/15"))).toBe(4500);
    expect(priceFor("claude-sonnet-4-5-20250929")).toMatchObject({ input: 3, output: 15 });
    expect(priceFor("gpt-4o-mini")).toMatchObject({ input: 0.15 });
    expect(priceFor("m", { m: parsePrice("1/2") })).toMatchObject({ input: 1, output: 2 });
    expect(priceFor("unknown-model")).toBeNull();
    expect(() => parsePrice("3")).toThrow(/input\/output/);
  });
});

describe("retries", () => {
  const p = { maxRetries: 3, maxWaitMs: 10_000, baseMs: 500 };
  it("retries 429/5xx with backoff, honours Retry-After within the bound, never 4xx", () => {
    expect(retryDelay(503, null, 1, p)).toBe(500);
    expect(retryDelay(503, null, 3, p)).toBe(2000);
    expect(retryDelay(503, null, 4, p)).toBeNull();
    expect(retryDelay(429, "2", 1, p)).toBe(2000);
    expect(retryDelay(429, "60", 1, p)).toBeNull();
    expect(retryDelay(400, null, 1, p)).toBeNull();
    expect(retryDelay(0, null, 1, p)).toBe(500);
    expect(parseRetryAfter(new Date(Date.now() + 3000).toUTCString())).toBeGreaterThan(1000);
  });
});

describe("budgets", () => {
  const s = { runUsd: 0, runTokens: 0, runExtraUsd: 0, personTodayUsd: 0, totalTodayUsd: 0, person: "ana" };
  it("refuses in plain words with spent, limit and how to continue", () => {
    expect(checkBudget({ runUsd: 1 }, { ...s, runUsd: 0.5 })).toEqual({ ok: true });
    const v = checkBudget({ runUsd: 1 }, { ...s, runUsd: 1.2 });
    expect(v).toMatchObject({ ok: false, code: "run_budget" });
    expect(!v.ok && v.message).toBe("Budget reached: this run spent $1.20 of its $1.00 limit. To continue, reply to this run with budget=+5 (adds $5 to its limit).");
    expect(checkBudget({ runUsd: 1 }, { ...s, runUsd: 1.2, runExtraUsd: 5 })).toEqual({ ok: true });
    expect(checkBudget({ runTokens: 100 }, { ...s, runTokens: 100 })).toMatchObject({ ok: false, code: "run_tokens" });
    expect(checkBudget({ dailyUsd: 10 }, { ...s, personTodayUsd: 10 })).toMatchObject({ ok: false, code: "daily_person" });
    expect(checkBudget({ dailyUsd: 10 }, { ...s, totalTodayUsd: 11 })).toMatchObject({ ok: false, code: "daily_total" });
  });
});
