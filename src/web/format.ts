/** Small pure formatters for the dashboard: durations, tokens, cost, and where a run came from. */
import type { Usage } from "../events/vocabulary.ts";
import { ACTIVE_STATUSES as ACTIVE, RUN_STATUSES } from "../runs/model.ts";

export const SOURCES: Record<string, string> = { slack: "Slack", linear: "Linear", cli: "CLI", api: "API", web: "Web" };
export const STATUSES = RUN_STATUSES;
export const ACTIVE_STATUSES: ReadonlySet<string> = new Set(ACTIVE);

export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, "0")}s`;
  const h = Math.floor(m / 60);
  return `${h}h${String(m % 60).padStart(2, "0")}m`;
}

export function formatTokens(n: number): string {
  if (!n) return "0";
  if (n < 1000) return String(n);
  if (n < 100_000) return `${(n / 1000).toFixed(1).replace(/\.0$/, "")}k`;
  if (n < 1_000_000) return `${Math.round(n / 1000)}k`;
  return `${(n / 1_000_000).toFixed(1).replace(/\.0$/, "")}M`;
}

export function formatCost(cost: number): string {
  if (!cost) return "";
  return cost < 0.01 ? `$${cost.toFixed(4)}` : `$${cost.toFixed(2)}`;
}

/** "1.2k tokens · $0.03", or "" when nothing was used. */
export function formatUsage(u: Partial<Usage> | null | undefined): string {
  if (!u) return "";
  const tokens = (u.input ?? 0) + (u.output ?? 0) + (u.reasoning ?? 0);
  if (!tokens && !u.cost) return "";
  const cost = formatCost(u.cost ?? 0);
  return `${formatTokens(tokens)} tokens${cost ? ` · ${cost}` : ""}`;
}

/** "12 s ago", "3 min ago", from two instants. */
export function ago(iso: string | null | undefined, now: Date): string {
  if (!iso) return "never";
  const s = Math.max(0, Math.round((now.getTime() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ago`;
}

const httpUrl = (u: unknown): string | null => (typeof u === "string" && /^https?:\/\/[^\s]+$/i.test(u) ? u : null);
const slackId = (v: unknown): string | null => (typeof v === "string" && /^[A-Z0-9]{2,30}$/i.test(v) ? v : null);

/**
 * Where a run came from, as a label and (when known) a link back: a Slack thread's permalink or its channel,
 * a Linear issue. CLI and API runs have no link.
 */
export function sourceLink(source: string, ref: Record<string, unknown> | null | undefined): { label: string; detail: string | null; href: string | null } {
  const r = ref ?? {};
  const label = SOURCES[source] ?? source;
  if (source === "slack") {
    const channel = slackId(r.channel);
    const team = slackId(r.team);
    const permalink = httpUrl(r.permalink);
    if (permalink) return { label, detail: "thread", href: permalink };
    if (channel && team) return { label, detail: "channel", href: `https://app.slack.com/client/${team}/${channel}` };
    if (channel) return { label, detail: "channel", href: `https://slack.com/app_redirect?channel=${channel}` };
    return { label, detail: null, href: null };
  }
  if (source === "linear") {
    const detail = typeof r.identifier === "string" && r.identifier ? r.identifier : "issue";
    return { label, detail, href: httpUrl(r.issueUrl) };
  }
  return { label, detail: null, href: null };
}
