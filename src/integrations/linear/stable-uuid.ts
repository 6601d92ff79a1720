/** A UUID derived from a string (name-based, SHA-256): the same dedupe key gives the same Linear id on every retry. */
import crypto from "node:crypto";

export function stableUuid(key: string): string {
  const h = crypto.createHash("sha256").update(`deckhand:${key}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x50; // version 5-style (name-based)
  h[8] = (h[8]! & 0x3f) | 0x80; // RFC 4122 variant
  const x = h.subarray(0, 16).toString("hex");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}
