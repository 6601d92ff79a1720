/** Budgets as a pure decision: may this run make another model call? The refusal says it in plain words. */
import { formatUsd } from "./prices.ts";

export interface BudgetLimits {
  runUsd?: number;
  runTokens?: number;
  dailyUsd?: number;
}

export interface Spending {
  /** This run, in USD and tokens (input + output + cache). */
  runUsd: number;
  runTokens: number;
  /** USD added to this run's limit by follow-ups. */
  runExtraUsd: number;
  /** Today (UTC): this run's person, and everyone. */
  personTodayUsd: number;
  totalTodayUsd: number;
  person: string | null;
}

export type BudgetVerdict = { ok: true } | { ok: false; code: "run_budget" | "run_tokens" | "daily_person" | "daily_total"; message: string };

export const RAISE_HINT = "To continue, reply to this run with budget=+5 (adds $5 to its limit).";

export function checkBudget(limits: BudgetLimits, s: Spending): BudgetVerdict {
  if (limits.runUsd !== undefined) {
    const limit = limits.runUsd + s.runExtraUsd;
    if (s.runUsd >= limit) {
      return { ok: false, code: "run_budget", message: `Budget reached: this run spent ${formatUsd(s.runUsd)} of its ${formatUsd(limit)} limit. ${RAISE_HINT}` };
    }
  }
  if (limits.runTokens !== undefined && s.runTokens >= limits.runTokens && s.runExtraUsd === 0) {
    return {
      ok: false,
      code: "run_tokens",
      message: `Budget reached: this run used ${s.runTokens} tokens of its ${limits.runTokens} limit. ${RAISE_HINT.replace("adds $5 to its limit", "lifts the token limit for this run")}`,
    };
  }
  if (limits.dailyUsd !== undefined) {
    if (s.person && s.personTodayUsd >= limits.dailyUsd) {
      return { ok: false, code: "daily_person", message: `Daily budget reached: ${s.person} has spent ${formatUsd(s.personTodayUsd)} today (limit ${formatUsd(limits.dailyUsd)}). It resets at 00:00 UTC.` };
    }
    if (s.totalTodayUsd >= limits.dailyUsd) {
      return { ok: false, code: "daily_total", message: `Daily budget reached: runs have spent ${formatUsd(s.totalTodayUsd)} today (limit ${formatUsd(limits.dailyUsd)}). It resets at 00:00 UTC.` };
    }
  }
  return { ok: true };
}
