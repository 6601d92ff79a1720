/**
 * Surfaces and integrations mounted into the server (Slack, Linear, GitHub). Each says in one line whether it is
 * configured, for the start-up log.
 */
import type { Deckhand } from "../app.ts";

export type IntegrationMount = (deckhand: Deckhand) => Promise<string>;

/**
 * Integrations call `registerIntegration` while this module is still loading (the import lines at the end form a
 * cycle), before a `const` here would be initialised: the list lives on a hoisted function instead.
 */
function registered(): IntegrationMount[] {
  const holder = registered as { list?: IntegrationMount[] };
  return (holder.list ??= []);
}

export function registerIntegration(m: IntegrationMount): void {
  registered().push(m);
}

export async function mountIntegrations(deckhand: Deckhand): Promise<string[]> {
  const lines: string[] = [];
  for (const m of registered()) lines.push(await m(deckhand));
  if (!lines.some((l) => l.startsWith("slack"))) lines.push("slack: not configured (set SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN)");
  if (!lines.some((l) => l.startsWith("linear"))) lines.push("linear: not configured (set LINEAR_WEBHOOK_SECRET and LINEAR_ACCESS_TOKEN)");
  return lines;
}

import "./github/index.ts";
import "./linear/index.ts";
import "./slack/index.ts";
