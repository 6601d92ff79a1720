/**
 * Per-event size limit, shared by the relay (which truncates before sending) and the receiver (which enforces it
 * on whatever arrives). Pure and dependency-free so it bundles into the relay. The longest strings are cut first,
 * each with a visible marker, so a 40 MB tool output becomes its first part plus "… [truncated 39.9 MB]".
 */

export const TRUNCATED_MARK = "… [truncated";
const MAX_DEPTH = 64;
const MAX_ROUNDS = 32;

const bytesOf = (x: unknown): number => Buffer.byteLength(JSON.stringify(x) ?? "");
const human = (n: number) => (n >= 1_048_576 ? `${(n / 1_048_576).toFixed(1)} MB` : n >= 1024 ? `${(n / 1024).toFixed(1)} kB` : `${n} bytes`);

interface Leaf {
  parent: Record<string, unknown> | unknown[];
  key: string | number;
  length: number;
}

function longestString(x: unknown, depth = 0, best: Leaf | null = null): Leaf | null {
  if (depth > MAX_DEPTH || x === null || typeof x !== "object") return best;
  const entries: [string | number, unknown][] = Array.isArray(x) ? x.map((v, i) => [i, v]) : Object.entries(x);
  for (const [k, v] of entries) {
    if (typeof v === "string") {
      if (!best || v.length > best.length) best = { parent: x as Leaf["parent"], key: k, length: v.length };
    } else if (v !== null && typeof v === "object") best = longestString(v, depth + 1, best);
  }
  return best;
}

/**
 * `data` if its JSON is at most `maxBytes`; otherwise a copy whose longest strings are cut (marked). If cutting
 * strings is not enough (thousands of small fields), the data is replaced by a marker object.
 */
export function truncateEventData(data: Record<string, unknown>, maxBytes: number): { data: Record<string, unknown>; truncated: boolean } {
  let size = bytesOf(data);
  if (size <= maxBytes) return { data, truncated: false };
  const original = size;
  let copy: Record<string, unknown>;
  try {
    copy = JSON.parse(JSON.stringify(data));
  } catch {
    return { data: { truncated: true, note: `${TRUNCATED_MARK} ${human(original)}]` }, truncated: true };
  }
  for (let round = 0; round < MAX_ROUNDS && size > maxBytes; round++) {
    const leaf = longestString(copy);
    if (!leaf || leaf.length < 256) break;
    const s = (leaf.parent as Record<string | number, string>)[leaf.key]!;
    const over = size - maxBytes;
    // Characters may be up to 3 bytes (JSON escapes up to 6): cut generously, keep at least a readable start.
    const keep = Math.max(200, Math.min(s.length - 200, s.length - over - 64, Math.floor(maxBytes / 4)));
    const cut = s.slice(0, keep);
    (leaf.parent as Record<string | number, string>)[leaf.key] = `${cut}${TRUNCATED_MARK} ${human(Buffer.byteLength(s) - Buffer.byteLength(cut))}]`;
    size = bytesOf(copy);
  }
  if (size > maxBytes) return { data: { truncated: true, note: `${TRUNCATED_MARK} ${human(original)}: the event had too many fields to keep]` }, truncated: true };
  return { data: copy, truncated: true };
}
