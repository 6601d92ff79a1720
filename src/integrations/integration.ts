/**
 * What an integration is: a Fastify plugin that wires one surface or service into a Deckhand server (its routes
 * in its own encapsulated context, its notifier on the outbox, its publishers) and says in one line whether it is
 * configured. Integrations are registered before the server listens; `src/integrations/index.ts` composes them.
 */
import type { FastifyInstance } from "fastify";
import type { Deckhand } from "../app.ts";
import { spanForResponse } from "../ops/tracing.ts";

export interface IntegrationOptions {
  deckhand: Deckhand;
  /** Receives the start-up log line ("slack: events at …", "linear: not configured …"). */
  said(line: string): void;
}

export type Integration<Extra = object> = (f: FastifyInstance, o: IntegrationOptions & Extra) => Promise<void>;

/** Register one integration on `deckhand`'s server; resolves with its start-up line once it is loaded. */
export async function mountIntegration<Extra extends object>(deckhand: Deckhand, plugin: Integration<Extra>, extra?: Extra): Promise<string> {
  let line = "";
  await deckhand.http.register(async (f) => {
    // Every request an integration serves (webhooks, OAuth) is a span, ended when its response is.
    f.addHook("onRequest", (req, reply, done) => spanForResponse(`webhook ${req.routeOptions.url ?? ""}`, { "http.request.method": req.method, "url.path": req.routeOptions.url ?? "" }, reply.raw, done));
    await f.register(plugin as Integration<object>, { ...(extra ?? {}), deckhand, said: (l: string) => void (line = l) });
  });
  return line;
}
