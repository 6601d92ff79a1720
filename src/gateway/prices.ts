/**
 * Prices in USD per million tokens for known models, overridable with MODEL_PRICES. Costs are integers in
 * millionths of a dollar so that sums per run, person and day are exact. Pure.
 */
export interface Price {
  input: number;
  output: number;
  cacheRead: number;
  cacheWrite: number;
}

export interface TokenUsage {
  input: number;
  output: number;
  cacheRead: number;
  cacheWrite: number;
}

const p = (input: number, output: number, cacheRead = input / 10, cacheWrite = input * 1.25): Price => ({ input, output, cacheRead, cacheWrite });

/** Matched by prefix of the model name (longest first), so dated variants (claude-sonnet-4-5-20250929) match. */
export const KNOWN_PRICES: Record<string, Price> = {
  "claude-opus-4": p(15, 75),
  "claude-opus-4-5": p(5, 25),
  "claude-sonnet-4": p(3, 15),
  "claude-3-7-sonnet": p(3, 15),
  "claude-3-5-haiku": p(0.8, 4),
  "claude-haiku-4-5": p(1, 5),
  "gpt-4o": p(2.5, 10, 1.25, 2.5),
  "gpt-4o-mini": p(0.15, 0.6, 0.075, 0.15),
  "gpt-4.1": p(2, 8, 0.5, 2),
  "gpt-4.1-mini": p(0.4, 1.6, 0.1, 0.4),
  "gpt-5": p(1.25, 10, 0.125, 1.25),
  "gpt-5-mini": p(0.25, 2, 0.025, 0.25),
  o3: p(2, 8, 0.5, 2),
  "o4-mini": p(1.1, 4.4, 0.275, 1.1),
  "deepseek-chat": p(0.27, 1.1, 0.07, 0.27),
};

/** `3/15` or `3/15/0.3/3.75` → a Price; throws with a plain message. */
export function parsePrice(spec: string): Price {
  const parts = spec.split("/").map((s) => Number(s.trim()));
  if (parts.length < 2 || parts.length > 4 || parts.some((n) => !Number.isFinite(n) || n < 0)) {
    throw new Error(`"${spec}" is not input/output[/cacheRead/cacheWrite] in USD per million tokens`);
  }
  const [input, output, cacheRead, cacheWrite] = parts as [number, number, number?, number?];
  return p(input, output, cacheRead ?? input / 10, cacheWrite ?? input * 1.25);
}

/** The price of a model: an override, else the longest known prefix, else null (cost unknown → 0). */
export function priceFor(model: string, overrides: Record<string, Price> = {}): Price | null {
  if (Object.hasOwn(overrides, model)) return overrides[model]!;
  const name = model.includes("/") ? model.slice(model.lastIndexOf("/") + 1) : model;
  if (Object.hasOwn(overrides, name)) return overrides[name]!;
  let best: string | null = null;
  for (const k of Object.keys(KNOWN_PRICES)) if (name.startsWith(k) && (!best || k.length > best.length)) best = k;
  return best ? KNOWN_PRICES[best]! : null;
}

/** Cost in millionths of a dollar (tokens × USD per million = micro-dollars), rounded up to a whole one. */
export function costMicros(u: TokenUsage, price: Price | null): number {
  if (!price) return 0;
  return Math.ceil(u.input * price.input + u.output * price.output + u.cacheRead * price.cacheRead + u.cacheWrite * price.cacheWrite - 1e-9);
}

export const microsToUsd = (m: number): number => m / 1_000_000;
export const formatUsd = (usd: number): string => `$${usd < 0.01 && usd > 0 ? usd.toFixed(4) : usd.toFixed(2)}`;
