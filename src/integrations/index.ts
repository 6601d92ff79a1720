/**
 * Surfaces and integrations mounted into the server (Slack, Linear, GitHub). Each says in one line whether it is
 * configured, for the start-up log.
 */
import type { Deckhand } from "../app.ts";

export type IntegrationMount = (deckhand: Deckhand) => Promise<string>;

const mounts: IntegrationMount[] = [];

export function registerIntegration(m: IntegrationMount): void {
  mounts.push(m);
}

export async function mountIntegrations(deckhand: Deckhand): Promise<string[]> {
  const lines: string[] = [];
  for (const m of mounts) lines.push(await m(deckhand));
  if (!lines.some((l) => l.startsWith("slack"))) lines.push("slack: not configured (set SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN)");
  if (!lines.some((l) => l.startsWith("linear"))) lines.push("linear: not configured (set LINEAR_WEBHOOK_SECRET and LINEAR_ACCESS_TOKEN)");
  return lines;
}
