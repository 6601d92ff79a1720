/**
 * Revocable dashboard sessions: the signed cookie (session.ts) is only half of it; the session must also have a
 * row in `web_sessions` made under the API token in force. Signing out deletes the row; start-up deletes rows made
 * under any other token (rotation signs everybody out, even a process that still knows the old secret).
 */
import crypto from "node:crypto";
import { and, eq, gt, lt, ne } from "drizzle-orm";
import type { Db } from "../db/database.ts";
import { webSessions } from "../db/schema.ts";
import { newSession, parseCookies, readSession, SESSION_COOKIE, sessionSecret, signSession, type WebSession } from "./session.ts";

export class SessionStore {
  readonly secret: Buffer;
  private readonly tokenHash: string;

  constructor(
    private readonly db: Db,
    apiToken: string,
  ) {
    this.secret = sessionSecret(apiToken);
    this.tokenHash = crypto.createHash("sha256").update(this.secret).digest("hex");
  }

  /** End every session made under another API token, and expired ones. */
  async revokeStale(): Promise<void> {
    await this.db.delete(webSessions).where(ne(webSessions.tokenHash, this.tokenHash));
    await this.db.delete(webSessions).where(lt(webSessions.expiresAt, new Date()));
  }

  /** A new session: its row, and the cookie value naming it. */
  async create(name: string | null | undefined): Promise<{ session: WebSession; cookie: string }> {
    const session = newSession(name);
    await this.db.delete(webSessions).where(lt(webSessions.expiresAt, new Date()));
    await this.db.insert(webSessions).values({ id: session.sid, name: session.name, tokenHash: this.tokenHash, expiresAt: new Date(session.exp) });
    return { session, cookie: signSession(session, this.secret) };
  }

  /** The live session named by a Cookie header, or null (missing, forged, expired, signed out, other token). */
  async fromCookieHeader(header: string | undefined): Promise<WebSession | null> {
    const s = readSession(parseCookies(header)[SESSION_COOKIE], this.secret);
    if (!s) return null;
    const [row] = await this.db
      .select({ id: webSessions.id })
      .from(webSessions)
      .where(and(eq(webSessions.id, s.sid), eq(webSessions.tokenHash, this.tokenHash), gt(webSessions.expiresAt, new Date())));
    return row ? s : null;
  }

  async revoke(sid: string): Promise<void> {
    await this.db.delete(webSessions).where(eq(webSessions.id, sid));
  }
}
