/**
 * Reading agent-written JSON without trusting its shape. Every value in a stored event was chosen by the agent
 * (the relay token lives in the sandbox), so a field may be any JSON: a number where text is expected, `null` in a
 * list, an object with a `toString` key (which makes `String(x)` throw). These helpers never throw and never read
 * through an object's prototype.
 */

/** `s` cut to at most `n` characters, the cut marked with "…". */
export function clip(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

/** A plain JSON object (not an array, not null), else an empty object. */
export function obj(x: unknown): Record<string, unknown> {
  return x !== null && typeof x === "object" && !Array.isArray(x) ? (x as Record<string, unknown>) : {};
}

/** An own property of `o` (never one inherited from Object.prototype, like `constructor`). */
export function own(o: unknown, key: string): unknown {
  const r = obj(o);
  return Object.hasOwn(r, key) ? r[key] : undefined;
}

/** Text: strings as they are, numbers and booleans written out, anything else (objects, null) as "". */
export function text(x: unknown): string {
  if (typeof x === "string") return x;
  if (typeof x === "number" || typeof x === "boolean" || typeof x === "bigint") return String(x);
  return "";
}

/** A finite number (numeric strings too), else 0. */
export function num(x: unknown): number {
  const n = typeof x === "number" ? x : typeof x === "string" && x.trim() ? Number(x) : Number.NaN;
  return Number.isFinite(n) ? n : 0;
}

/** Look a key up in a fixed table without reaching Object.prototype (`VERBS["constructor"]`). */
export function lookup<T>(table: Readonly<Record<string, T>>, key: unknown): T | undefined {
  return typeof key === "string" && Object.hasOwn(table, key) ? table[key] : undefined;
}
