/**
 * Directives in a task or follow-up text, parsed in ONE place for every surface (Slack, Linear, CLI, API):
 *   `model=<id>`   run this task with another allowed model (see MODELS)
 *   `budget=+<usd>` raise this run's spending limit by that many dollars (e.g. `budget=+5`)
 * A directive is a whole word; it is removed from the text the agent sees. Pure.
 */
export interface Directives {
  /** The text without directives (trimmed). */
  text: string;
  model?: string;
  /** Dollars to add to the run's budget. */
  budgetUsd?: number;
  /** Directives that were recognised but malformed, in plain words. */
  problems: string[];
}

const DIRECTIVE = /(^|\s)(model|budget)=(\S*)/gi;
const MODEL_ID = /^[\w.:@/-]{1,200}$/;
const MAX_BUDGET_RAISE_USD = 10_000;

export function parseDirectives(raw: string): Directives {
  const out: Directives = { text: "", problems: [] };
  const text = raw.replace(DIRECTIVE, (_m, lead: string, key: string, value: string) => {
    const k = key.toLowerCase();
    if (k === "model") {
      if (MODEL_ID.test(value)) out.model ??= value;
      else out.problems.push(`"model=${value.slice(0, 60)}" is not a model id`);
    } else {
      const m = /^\+(\d{1,7}(?:\.\d{1,4})?)$/.exec(value);
      const n = m ? Number(m[1]) : NaN;
      if (m && n > 0 && n <= MAX_BUDGET_RAISE_USD) out.budgetUsd = (out.budgetUsd ?? 0) + n;
      else out.problems.push(`"budget=${value.slice(0, 60)}" should look like budget=+5 (dollars to add to this run's limit, at most ${MAX_BUDGET_RAISE_USD})`);
    }
    return lead;
  });
  out.text = text.replace(/[ \t]{2,}/g, " ").trim();
  return out;
}

/** Is this model allowed? The error lists the allowed ones. */
export function checkModel(model: string, allowed: readonly string[]): string | null {
  if (allowed.includes(model)) return null;
  return `Unknown model "${model}". Allowed models: ${allowed.join(", ")}`;
}
