/**
 * Installing the Linear app in a workspace (OAuth, actor=app): `/linear/oauth/install` sends the admin to Linear,
 * `/linear/oauth/callback` exchanges the code for a token, reads the app user and the organization with it, and
 * stores both in `installations` — so one Deckhand serves several workspaces (the webhook's organizationId picks
 * the token). The token endpoint sits at LINEAR_API_URL's origin (`/oauth/token`), so tests can point it at a fake.
 */
import crypto from "node:crypto";
import { sql } from "drizzle-orm";
import type { FastifyReply, FastifyRequest } from "fastify";
import { installations } from "../../db/schema.ts";
import type { LinearDeps } from "./deps.ts";
import { LINEAR_SURFACE } from "./linear-clients.ts";
import { exchangeToken, grantData } from "./refresh-token.ts";

export { tokenEndpoint } from "./token-endpoint.ts";

export const LINEAR_SCOPES = ["read", "write", "app:assignable", "app:mentionable"];
const STATE_TTL_MS = 15 * 60_000;

/** A stateless CSRF `state`: time + HMAC with the client secret. */
export function makeState(secret: string, now = Date.now()): string {
  const t = String(now);
  return `${t}.${crypto.createHmac("sha256", secret).update(`linear-oauth:${t}`).digest("base64url")}`;
}

export function checkState(secret: string, state: string | null, now = Date.now()): boolean {
  const [t, sig] = (state ?? "").split(".");
  if (!t || !sig || !/^\d+$/.test(t) || now - Number(t) > STATE_TTL_MS || Number(t) > now + 60_000) return false;
  const want = makeState(secret, Number(t)).split(".")[1]!;
  return want.length === sig.length && crypto.timingSafeEqual(Buffer.from(want), Buffer.from(sig));
}

type Handler = (req: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply>;

function page(reply: FastifyReply, status: number, text: string): FastifyReply {
  const esc = text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
  return reply.code(status).type("text/html; charset=utf-8").send(`<!doctype html><meta charset="utf-8"><title>Deckhand for Linear</title><p>${esc}</p>`);
}

export function oauthInstallHandler(deps: LinearDeps): Handler {
  return async (_req, res) => {
    const { LINEAR_CLIENT_ID: id, LINEAR_CLIENT_SECRET: secret, PUBLIC_URL } = deps.config;
    if (!id || !secret) return page(res, 404, "Linear OAuth is not configured (set LINEAR_CLIENT_ID and LINEAR_CLIENT_SECRET).");
    const u = new URL("https://linear.app/oauth/authorize");
    u.searchParams.set("client_id", id);
    u.searchParams.set("redirect_uri", `${PUBLIC_URL}/linear/oauth/callback`);
    u.searchParams.set("response_type", "code");
    u.searchParams.set("scope", LINEAR_SCOPES.join(","));
    u.searchParams.set("actor", "app");
    u.searchParams.set("state", makeState(secret));
    return res.code(302).header("location", u.toString()).send();
  };
}

export function oauthCallbackHandler(deps: LinearDeps): Handler {
  const log = deps.log.child({ component: "linear-oauth" });
  return async (req, res) => {
    try {
      const { LINEAR_CLIENT_ID: id, LINEAR_CLIENT_SECRET: secret, PUBLIC_URL } = deps.config;
      if (!id || !secret) return page(res, 404, "Linear OAuth is not configured (set LINEAR_CLIENT_ID and LINEAR_CLIENT_SECRET).");
      const q = new URL(req.url ?? "/", "http://x").searchParams;
      if (q.get("error")) return page(res, 400, `Linear did not authorize the install: ${q.get("error_description") ?? q.get("error")}`);
      const code = q.get("code");
      if (!code) return page(res, 400, "Missing code.");
      if (!checkState(secret, q.get("state"))) return page(res, 400, "This install link expired or was not started here. Start again from /linear/oauth/install.");
      const { status, grant: tok } = await exchangeToken(deps.config, {
        code,
        redirect_uri: `${PUBLIC_URL}/linear/oauth/callback`,
        client_id: id,
        client_secret: secret,
        grant_type: "authorization_code",
      });
      if (!tok.access_token) {
        log.warn({ status }, "Linear token exchange failed");
        return page(res, 502, `Linear refused the code (HTTP ${status}). Try installing again.`);
      }
      const client = deps.clients.client({ accessToken: tok.access_token });
      const viewer = await client.viewer;
      const org = await viewer.organization;
      const data = { organizationName: org.name, ...grantData(tok) };
      await deps.db
        .insert(installations)
        .values({ surface: LINEAR_SURFACE, workspaceId: org.id, accessToken: tok.access_token, appUserId: viewer.id, data })
        .onConflictDoUpdate({
          target: [installations.surface, installations.workspaceId],
          set: { accessToken: tok.access_token, appUserId: viewer.id, data, updatedAt: sql`now()` },
        });
      log.info({ workspaceId: org.id, appUserId: viewer.id }, "Linear workspace installed");
      return page(res, 200, `Deckhand is installed in ${org.name}. Delegate an issue to it or mention it in a comment.`);
    } catch (e) {
      log.error({ err: (e as Error).message }, "Linear install failed");
      return page(res, 502, "The install failed while talking to Linear. Try again.");
    }
  };
}
