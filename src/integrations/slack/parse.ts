/**
 * What a Slack message asks for, as a pure function of its text: a command (stop, status, help) or a task,
 * and an optional `repo=<name>`. Slack's markup (mentions, links, escapes) is turned back into plain text.
 */

import { commandOf, type IntakeCommand } from "../../intake/decide.ts";

export type Command = IntakeCommand;

export interface ParsedMessage {
  /** The message as plain text, without the bot mention and without `repo=...`. */
  text: string;
  /** `repo=<name>` (or `repo:<name>`) when given. */
  repo: string | null;
  /** A bare command word ("stop", "cancel", "status", "help"), when the whole message is one. */
  command: Command | null;
}

/** Slack's message markup back to plain text: `<@U1>` removed for the bot, links unwrapped, entities decoded. */
export function slackToPlain(text: string, botUserId?: string | null): string {
  let t = text ?? "";
  if (botUserId) t = t.replace(new RegExp(`<@${botUserId}(?:\\|[^>]*)?>`, "g"), " ");
  t = t
    .replace(/<mailto:([^|>]+)\|([^>]+)>/g, "$2")
    .replace(/<((?:https?|ftp):\/\/[^|>]+)\|([^>]+)>/g, (_m, url: string, label: string) => (label === url.replace(/^\w+:\/\//, "") ? url : `${label} (${url})`))
    .replace(/<((?:https?|ftp):\/\/[^>]+)>/g, "$1")
    .replace(/<#[A-Z0-9]+\|([^>]+)>/g, "#$1")
    .replace(/<!(here|channel|everyone)>/g, "@$1")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&");
  return t.replace(/[ \t]+\n/g, "\n").replace(/[ \t]{2,}/g, " ").trim();
}

/** Parse a message addressed to the bot. Pure. */
export function parseMessage(raw: string, botUserId?: string | null): ParsedMessage {
  let text = slackToPlain(raw, botUserId);
  let repo: string | null = null;
  const m = text.match(/(?:^|\s)repo\s*[=:]\s*`?([\w.\-/]+)`?[,;]?(?=\s|$|[!?])/i);
  if (m) {
    repo = m[1]!.replace(/[.]+$/, "");
    text = (text.slice(0, m.index) + " " + text.slice(m.index! + m[0].length)).replace(/^\s*[,;:]\s*/, "").replace(/\s{2,}/g, " ").trim();
  }
  return { text, repo, command: commandOf(text) };
}

/**
 * Which repo a new run in this channel uses: `repo=` in the text, else the channel's default, else the server's
 * DEFAULT_REPO (null: nobody said; the caller asks).
 */
export function chooseRepo(parsed: Pick<ParsedMessage, "repo">, channel: string, channelRepos: Record<string, string>, defaultRepo?: string | null): string | null {
  return parsed.repo ?? channelRepos[channel] ?? defaultRepo ?? null;
}
