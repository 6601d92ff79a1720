/**
 * The integrations a server runs, composed in one place: each is a Fastify plugin (integration.ts) registered on
 * the server before it listens, in this order. None registers itself on import.
 */
import type { Deckhand } from "../app.ts";
import { github } from "./github/index.ts";
import { type Integration, mountIntegration } from "./integration.ts";
import { linear } from "./linear/index.ts";
import { slack } from "./slack/index.ts";

export const INTEGRATIONS: readonly Integration[] = [github, linear, slack];

/** Mount every integration; resolves with their start-up lines. */
export async function mountIntegrations(deckhand: Deckhand): Promise<string[]> {
  const lines: string[] = [];
  for (const plugin of INTEGRATIONS) lines.push(await mountIntegration(deckhand, plugin));
  return lines;
}
