/**
 * Linear: delegate an issue to Deckhand (or mention it) → a run; replies steer it; progress shows as agent
 * activities. Serves `POST /linear/webhook` and the OAuth install routes, and puts the Linear notifier on the outbox.
 */
import type { Deckhand } from "../../app.ts";
import { ConversationStore } from "../../intake/conversations.ts";
import { requireSession } from "../../server/session-guard.ts";
import { BoundedWork } from "../bounded-work.ts";
import { type Integration, mountIntegration } from "../integration.ts";
import type { LinearDeps } from "./deps.ts";
import { LinearClients } from "./linear-clients.ts";
import { LinearNotifier } from "./linear-notifier.ts";
import { oauthCallbackHandler, oauthInstallHandler } from "./oauth.ts";
import { linearWebhookRoutes, WEBHOOK_PATH } from "./webhook-handler.ts";

export interface LinearMount {
  deps: LinearDeps;
  /** Resolves when the background work of the webhooks received so far is done (tests, shutdown). */
  settled(): Promise<void>;
}

const NOT_CONFIGURED = "linear: not configured (set LINEAR_WEBHOOK_SECRET and LINEAR_ACCESS_TOKEN)";
const INSTALL_PATH = "/linear/oauth/install";

/** Mount Linear on `deckhand`'s server (before it listens); null when LINEAR_WEBHOOK_SECRET is not set. */
export async function mountLinear(deckhand: Deckhand): Promise<LinearMount | null> {
  let m: LinearMount | null = null;
  await mountIntegration(deckhand, linear, { mounted: (x: LinearMount) => void (m = x) });
  return m;
}

/** The Linear integration (integration.ts); `mounted` (tests) receives what was built. */
export const linear: Integration<{ mounted?: (m: LinearMount) => void }> = async (f, { deckhand, said, mounted }) => {
  const c = deckhand.config;
  if (!c.LINEAR_WEBHOOK_SECRET) return said(NOT_CONFIGURED);
  const clients = new LinearClients(deckhand.database.db, c);
  const deps: LinearDeps = { db: deckhand.database.db, config: c, service: deckhand.service, outbox: deckhand.outbox, clients, conversations: new ConversationStore(deckhand.database.db), log: deckhand.log.child({ surface: "linear" }) };
  const inflight = new Set<Promise<unknown>>();
  const track = (p: Promise<unknown>) => {
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
  };
  // Acknowledged first, handled a few at a time (bounded-work.ts).
  const work = new BoundedWork({ concurrency: c.INBOUND_CONCURRENCY, maxQueued: c.INBOUND_MAX_QUEUED, log: deps.log });
  if (deckhand.role !== "worker") {
    await f.register(linearWebhookRoutes(deps, c.LINEAR_WEBHOOK_SECRET, track, work));
    // Installing the app in a workspace is an admin's act: a signed-in dashboard session first.
    await f.register(async (admin) => {
      admin.addHook("onRequest", requireSession(deckhand.sessions, INSTALL_PATH));
      admin.get(INSTALL_PATH, oauthInstallHandler(deps));
    });
    // Linear sends the admin back here; the signed `state` is what guards it.
    f.get("/linear/oauth/callback", oauthCallbackHandler(deps));
  }
  deckhand.outbox.register(new LinearNotifier(clients, c.LINEAR_VERBOSITY));
  const settled = async () => {
    while (inflight.size) await Promise.allSettled([...inflight]);
  };
  deckhand.onClose(settled);
  mounted?.({ deps, settled });
  const auth = c.LINEAR_ACCESS_TOKEN ? "app token" : c.LINEAR_API_KEY ? "API key" : c.LINEAR_CLIENT_ID ? "OAuth installs only" : "no token yet (install via /linear/oauth/install)";
  const teams = Object.keys(c.LINEAR_TEAM_REPOS);
  said(`linear: webhook at ${c.PUBLIC_URL}${WEBHOOK_PATH} (${auth}${c.LINEAR_BOT_USER_ID ? ", classic assignment on" : ""}${teams.length ? `, team repos ${teams.join(", ")}` : ""})`);
};
