/**
 * Dashboard sessions: an HMAC-signed cookie keyed by a secret derived from API_TOKEN, naming a row in the
 * `web_sessions` table (session-store.ts: signing out or rotating API_TOKEN ends it). Each session carries a
 * random id; its CSRF token is an HMAC of that id, checked on every state-changing request. Pure (no I/O).
 */
import crypto from "node:crypto";

export const SESSION_COOKIE = "deckhand_session";
export const SESSION_TTL_MS = 7 * 24 * 3600 * 1000;

export interface WebSession {
  /** Random id: what the CSRF token is bound to. */
  sid: string;
  /** The name given at sign-in: the author of follow-ups and stops ("web" when empty). */
  name: string | null;
  /** Expiry, ms since the epoch. */
  exp: number;
}

const b64 = (b: Buffer | string) => Buffer.from(b).toString("base64url");
const mac = (secret: Buffer, what: string) => crypto.createHmac("sha256", secret).update(what).digest();

/** The signing key: derived from API_TOKEN, never the token itself. */
export function sessionSecret(apiToken: string): Buffer {
  return crypto.createHmac("sha256", apiToken).update("deckhand web session v1").digest();
}

export function newSession(name: string | null | undefined, now = Date.now()): WebSession {
  const n = (name ?? "").trim().replace(/\s+/g, " ").slice(0, 80);
  return { sid: crypto.randomBytes(16).toString("base64url"), name: n || null, exp: now + SESSION_TTL_MS };
}

export function signSession(s: WebSession, secret: Buffer): string {
  const body = b64(JSON.stringify(s));
  return `${body}.${b64(mac(secret, `session:${body}`))}`;
}

/** The session in a cookie value, or null when it is missing, forged, malformed or expired. */
export function readSession(value: string | undefined, secret: Buffer, now = Date.now()): WebSession | null {
  if (!value || value.length > 2000) return null;
  const [body, sig, extra] = value.split(".");
  if (!body || !sig || extra !== undefined) return null;
  const want = mac(secret, `session:${body}`);
  const got = Buffer.from(sig, "base64url");
  if (got.length !== want.length || !crypto.timingSafeEqual(got, want)) return null;
  try {
    const s = JSON.parse(Buffer.from(body, "base64url").toString("utf8")) as WebSession;
    if (typeof s.sid !== "string" || typeof s.exp !== "number" || s.exp <= now) return null;
    return { sid: s.sid, name: typeof s.name === "string" ? s.name : null, exp: s.exp };
  } catch {
    return null;
  }
}

export function csrfToken(s: WebSession, secret: Buffer): string {
  return b64(mac(secret, `csrf:${s.sid}`));
}

export function csrfMatches(s: WebSession, secret: Buffer, got: unknown): boolean {
  if (typeof got !== "string" || !got) return false;
  const a = Buffer.from(csrfToken(s, secret));
  const b = Buffer.from(got);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i <= 0) continue;
    const k = part.slice(0, i).trim();
    const v = part.slice(i + 1).trim();
    try {
      out[k] = decodeURIComponent(v);
    } catch {
      out[k] = v;
    }
  }
  return out;
}

/** Set-Cookie value: httpOnly, SameSite=Lax (top-level links from Slack keep the session; POSTs also need the CSRF token), Secure on https. */
export function sessionCookie(value: string, opts: { secure: boolean; maxAgeMs?: number }): string {
  const maxAge = Math.floor((opts.maxAgeMs ?? SESSION_TTL_MS) / 1000);
  return `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${maxAge}${opts.secure ? "; Secure" : ""}`;
}

export function clearSessionCookie(secure: boolean): string {
  return `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0${secure ? "; Secure" : ""}`;
}

/** Only same-site relative paths of printable ASCII are followed after sign-in (no open redirect, no header injection). */
export function safeNext(next: unknown): string {
  const s = typeof next === "string" ? next : "";
  return /^\/(?![/\\])[\x21-\x7e]*$/.test(s) && !s.startsWith("/login") ? s : "/";
}

/** A `next` carrying control characters is refused outright (400), not quietly replaced. */
export function hasControlChars(v: unknown): boolean {
  return typeof v === "string" && /[\x00-\x1f\x7f]/.test(v);
}
