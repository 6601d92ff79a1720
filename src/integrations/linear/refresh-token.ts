/**
 * Linear OAuth access tokens expire; the install stores the refresh token and the expiry. Before a token is used
 * within 5 minutes of expiring, it is swapped for a new pair at the token endpoint and saved.
 */
import { and, eq, sql } from "drizzle-orm";
import type { Config } from "../../config/config.ts";
import type { Db } from "../../db/database.ts";
import { installations } from "../../db/schema.ts";
import { tokenEndpoint } from "./token-endpoint.ts";

export interface TokenGrant {
  access_token?: string;
  refresh_token?: string;
  expires_in?: number;
  scope?: string | string[];
}

const SURFACE = "linear";

export function needsRefresh(data: Record<string, unknown>, now = Date.now()): boolean {
  const at = typeof data.expiresAt === "string" ? Date.parse(data.expiresAt) : NaN;
  return typeof data.refreshToken === "string" && Number.isFinite(at) && at - now < 5 * 60_000;
}

/** The token fields to keep in `installations.data`. */
export function grantData(tok: TokenGrant, now = Date.now()): Record<string, unknown> {
  return {
    ...(tok.scope ? { scope: tok.scope } : {}),
    ...(tok.refresh_token ? { refreshToken: tok.refresh_token } : {}),
    ...(tok.expires_in ? { expiresAt: new Date(now + tok.expires_in * 1000).toISOString() } : {}),
  };
}

export async function exchangeToken(config: Pick<Config, "LINEAR_API_URL">, form: Record<string, string>): Promise<{ status: number; grant: TokenGrant }> {
  const res = await fetch(tokenEndpoint(config.LINEAR_API_URL), {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(form),
    signal: AbortSignal.timeout(15_000),
  });
  return { status: res.status, grant: ((await res.json().catch(() => ({}))) ?? {}) as TokenGrant };
}

export async function refreshInstallation(
  db: Db,
  config: Pick<Config, "LINEAR_API_URL" | "LINEAR_CLIENT_ID" | "LINEAR_CLIENT_SECRET">,
  workspaceId: string,
  data: Record<string, unknown>,
): Promise<string> {
  if (!config.LINEAR_CLIENT_ID || !config.LINEAR_CLIENT_SECRET) throw new Error("Linear token expired and LINEAR_CLIENT_ID / LINEAR_CLIENT_SECRET are not set to refresh it");
  const { status, grant } = await exchangeToken(config, {
    grant_type: "refresh_token",
    refresh_token: String(data.refreshToken),
    client_id: config.LINEAR_CLIENT_ID,
    client_secret: config.LINEAR_CLIENT_SECRET,
  });
  if (!grant.access_token) throw new Error(`Linear refused to refresh the workspace token (HTTP ${status}); reinstall the app`);
  const next = { ...data, ...grantData(grant) };
  await db
    .update(installations)
    .set({ accessToken: grant.access_token, data: next, updatedAt: sql`now()` })
    .where(and(eq(installations.surface, SURFACE), eq(installations.workspaceId, workspaceId)));
  return grant.access_token;
}
