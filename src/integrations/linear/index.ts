/**
 * Linear: delegate an issue to Deckhand (or mention it) → a run; replies steer it; progress shows as agent
 * activities. Mounts `POST /linear/webhook`, the OAuth install routes, and the Linear notifier on the outbox.
 */
import type { Deckhand } from "../../app.ts";
import { requireSession } from "../../server/raw-guards.ts";
import { BoundedWork } from "../bounded-work.ts";
import { registerIntegration } from "../index.ts";
import type { LinearDeps } from "./deps.ts";
import { LinearClients } from "./linear-clients.ts";
import { LinearNotifier } from "./linear-notifier.ts";
import { oauthCallbackHandler, oauthInstallHandler } from "./oauth.ts";
import { linearWebhookHandler } from "./webhook-handler.ts";

export interface LinearMount {
  deps: LinearDeps;
  /** Resolves when the background work of the webhooks received so far is done (tests, shutdown). */
  settled(): Promise<void>;
}

/** Mount the Linear integration; null when LINEAR_WEBHOOK_SECRET is not set. */
export async function mountLinear(deckhand: Deckhand): Promise<LinearMount | null> {
  const c = deckhand.config;
  if (!c.LINEAR_WEBHOOK_SECRET) return null;
  const clients = new LinearClients(deckhand.database.db, c);
  const deps: LinearDeps = { db: deckhand.database.db, config: c, service: deckhand.service, outbox: deckhand.outbox, clients, log: deckhand.log.child({ surface: "linear" }) };
  const inflight = new Set<Promise<unknown>>();
  const track = (p: Promise<unknown>) => {
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
  };
  // Acknowledged first, handled a few at a time (bounded-work.ts).
  const work = new BoundedWork({ concurrency: c.INBOUND_CONCURRENCY, maxQueued: c.INBOUND_MAX_QUEUED, log: deps.log });
  deckhand.mountRaw("/linear/webhook", linearWebhookHandler(deps, c.LINEAR_WEBHOOK_SECRET, track, work));
  // Installing the app in a workspace is an admin's act: a signed-in dashboard session first.
  deckhand.mountRaw("/linear/oauth/install", requireSession(deckhand.sessions, "/linear/oauth/install", oauthInstallHandler(deps)));
  deckhand.mountRaw("/linear/oauth/callback", oauthCallbackHandler(deps));
  deckhand.outbox.register(new LinearNotifier(clients, c.LINEAR_VERBOSITY));
  const settled = async () => {
    while (inflight.size) await Promise.allSettled([...inflight]);
  };
  deckhand.onClose(settled);
  return { deps, settled };
}

registerIntegration(async (deckhand) => {
  const c = deckhand.config;
  const m = await mountLinear(deckhand);
  if (!m) return "linear: not configured (set LINEAR_WEBHOOK_SECRET and LINEAR_ACCESS_TOKEN)";
  const auth = c.LINEAR_ACCESS_TOKEN ? "app token" : c.LINEAR_API_KEY ? "API key" : c.LINEAR_CLIENT_ID ? "OAuth installs only" : "no token yet (install via /linear/oauth/install)";
  const teams = Object.keys(c.LINEAR_TEAM_REPOS);
  return `linear: webhook at ${c.PUBLIC_URL}/linear/webhook (${auth}${c.LINEAR_BOT_USER_ID ? ", classic assignment on" : ""}${teams.length ? `, team repos ${teams.join(", ")}` : ""})`;
});
