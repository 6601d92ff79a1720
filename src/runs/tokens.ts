/** Random identifiers and secrets; tokens are stored only as hashes and compared in constant time. */
import crypto from "node:crypto";

export const randomToken = (bytes = 32): string => crypto.randomBytes(bytes).toString("base64url");

export const hashToken = (token: string): string => crypto.createHash("sha256").update(token).digest("hex");

export function tokenMatches(token: string, hash: string | null | undefined): boolean {
  if (!hash) return false;
  const a = Buffer.from(hashToken(token), "hex");
  const b = Buffer.from(hash, "hex");
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

export function safeEqual(a: string, b: string): boolean {
  const x = crypto.createHash("sha256").update(a).digest();
  const y = crypto.createHash("sha256").update(b).digest();
  return crypto.timingSafeEqual(x, y) && a.length === b.length;
}

/** Short, readable run id: `r-` + 10 base32 characters. */
export function newRunId(): string {
  const alphabet = "abcdefghijkmnpqrstuvwxyz23456789";
  const bytes = crypto.randomBytes(10);
  let s = "r-";
  for (const b of bytes) s += alphabet[b % alphabet.length];
  return s;
}

/** `deckhand/<short-slug>` from the task text. */
export function branchName(prompt: string, runId: string): string {
  const slug = prompt
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .split("-")
    .filter(Boolean)
    .slice(0, 5)
    .join("-")
    .slice(0, 40)
    .replace(/-+$/g, "");
  return `deckhand/${slug || "task"}-${runId.slice(2, 7)}`;
}

export function titleFrom(prompt: string): string {
  const line = prompt.trim().split("\n")[0]!.trim();
  return line.length > 80 ? `${line.slice(0, 77)}...` : line || "Untitled task";
}
