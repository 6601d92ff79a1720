/**
 * What a run's pull request says: title and body from the run and its result. Pure.
 * The body links back to where the run came from (the Slack thread, the Linear issue) and to the sign-in-required
 * run page (never the per-run token link: a public repository would publish it); the agent's summary is quoted,
 * attributed and neutralised (agent-words.ts);
 * a Linear run's PR title starts with the issue identifier, which is how Linear links a pull request to an issue.
 */
import type { Run } from "../../db/schema.ts";
import type { RunResult } from "../../runs/model.ts";
import { clip } from "../../events/safe.ts";
import { quoteAgent } from "../agent-words.ts";

/** GitHub refuses bodies over 65536 characters and titles over 256. */
export const MAX_BODY = 60_000;
export const MAX_TITLE = 256;
const MAX_FILES_LISTED = 50;

export interface SourceLink {
  /** "the Slack thread", "ENG-123", ... */
  label: string;
  url: string | null;
  /** The Linear issue identifier (ENG-123), when the run came from Linear. */
  linearIdentifier?: string;
}

const str = (v: unknown): string | undefined => (typeof v === "string" && v.trim() ? v.trim() : undefined);
const obj = (v: unknown): Record<string, unknown> => (v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
const isHttpUrl = (s: string | undefined): s is string => !!s && /^https?:\/\/\S+$/i.test(s);

/** A Slack message link from channel + ts: https://<workspace>.slack.com/archives/C123/p1700000000123456 */
export function slackPermalink(channel: string, ts: string, opts: { teamDomain?: string; threadTs?: string } = {}): string | null {
  if (!/^[A-Z0-9]+$/i.test(channel) || !/^\d+\.\d+$/.test(ts)) return null;
  const host = opts.teamDomain && /^[a-z0-9-]+$/i.test(opts.teamDomain) ? `${opts.teamDomain}.slack.com` : "slack.com";
  const thread = opts.threadTs && opts.threadTs !== ts ? `?thread_ts=${opts.threadTs}&cid=${channel}` : "";
  return `https://${host}/archives/${channel}/p${ts.replace(".", "")}${thread}`;
}

/**
 * Where the run came from, from `run.source` + `run.sourceRef`. Reads, in order:
 * Linear: `identifier` (or `issueIdentifier`), `issueUrl` (or `url`); Slack: `permalink` (or `threadUrl`, `url`),
 * else `channel` (or `channelId`) + `threadTs` (or `thread_ts`, `ts`) with an optional `teamDomain`; others: `url`.
 */
export function sourceLink(run: Pick<Run, "source" | "sourceRef" | "createdBy">): SourceLink | null {
  const ref = obj(run.sourceRef);
  if (run.source === "linear") {
    const issue = obj(ref.issue);
    const identifier = str(ref.identifier) ?? str(ref.issueIdentifier) ?? str(issue.identifier);
    const url = [str(ref.issueUrl), str(ref.url), str(issue.url)].find(isHttpUrl) ?? null;
    if (!identifier && !url) return null;
    return { label: identifier ?? "the Linear issue", url, ...(identifier ? { linearIdentifier: identifier } : {}) };
  }
  if (run.source === "slack") {
    let url = [str(ref.permalink), str(ref.threadUrl), str(ref.url)].find(isHttpUrl) ?? null;
    const channel = str(ref.channel) ?? str(ref.channelId);
    const threadTs = str(ref.threadTs) ?? str(ref.thread_ts);
    const ts = threadTs ?? str(ref.ts) ?? str(ref.messageTs);
    if (!url && channel && ts) url = slackPermalink(channel, ts, { teamDomain: str(ref.teamDomain) });
    return url ? { label: "the Slack thread", url } : null;
  }
  const url = [str(ref.url), str(ref.permalink)].find(isHttpUrl);
  return url ? { label: run.source, url } : null;
}

const oneLine = (s: string) => s.replace(/\s+/g, " ").trim();
const mdEscape = (s: string) => s.replace(/([\\`*_[\]<>|])/g, "\\$1");

export function pullRequestTitle(run: Pick<Run, "title" | "source" | "sourceRef" | "createdBy">): string {
  let title = oneLine(run.title) || "Deckhand changes";
  const id = sourceLink(run)?.linearIdentifier;
  if (id && !title.toUpperCase().includes(id.toUpperCase())) title = `${id}: ${title}`;
  return clip(title, MAX_TITLE);
}

export function pullRequestBody(
  run: Pick<Run, "id" | "title" | "prompt" | "source" | "sourceRef" | "createdBy">,
  result: Pick<RunResult, "summary" | "filesChanged" | "additions" | "deletions">,
  runPageUrl: string,
): string {
  const parts: string[] = [];
  const summary = result.summary?.trim();
  parts.push(summary ? quoteAgent(summary) : `_The agent left no summary._`);

  const files = result.filesChanged;
  const fileLines = files.slice(0, MAX_FILES_LISTED).map((f) => `- \`${f.path.replace(/`/g, "'")}\` (+${f.additions} −${f.deletions})`);
  if (files.length > MAX_FILES_LISTED) fileLines.push(`- … and ${files.length - MAX_FILES_LISTED} more`);
  parts.push(`### Files changed (${files.length}, +${result.additions} −${result.deletions})\n\n${fileLines.join("\n")}`);

  const task = oneLine(run.prompt);
  parts.push(`### Task\n\n> ${mdEscape(task.length > 500 ? `${task.slice(0, 499)}…` : task)}`);

  const links: string[] = [];
  const src = sourceLink(run);
  if (src?.linearIdentifier) links.push(`Linear issue: ${src.url ? `[${src.linearIdentifier}](${src.url})` : src.linearIdentifier}`);
  else if (src?.url) links.push(`Requested in [${src.label}](${src.url})${run.createdBy ? ` by ${mdEscape(run.createdBy)}` : ""}`);
  else links.push(`Requested from ${mdEscape(run.source)}${run.createdBy ? ` by ${mdEscape(run.createdBy)}` : ""}`);
  links.push(`Run: [${run.id}](${runPageUrl}) (timeline, diff, follow-ups)`);
  parts.push(links.map((l) => `- ${l}`).join("\n"));
  parts.push(`<sub>Opened by Deckhand. A follow-up on the run updates this pull request.</sub>`);

  let body = parts.join("\n\n");
  if (body.length > MAX_BODY) {
    // Keep the links: shorten the summary.
    const over = body.length - MAX_BODY + 40;
    const cut = summary ? `${quoteAgent(summary.slice(0, Math.max(0, summary.length - over * 2)))}\n\n… (summary shortened; the full text is on the run page)` : "";
    body = [cut, ...parts.slice(1)].join("\n\n").slice(0, MAX_BODY);
  }
  return body;
}
