/**
 * What Deckhand says in Slack, as pure functions of the run view: the status message (edited in place while a
 * run works), the final message when it goes idle, the failure / cancel message, and the short answers to
 * commands. Agent text is converted from Markdown to Slack's mrkdwn, escaped, and cut to fit with a link to the
 * full text on the run page.
 */
import type { RunView } from "../../runs/run-view.ts";
import { describeFailure, isActive, isTerminal } from "../../runs/model.ts";
import { clip } from "../../events/safe.ts";

/** A Block Kit block (plain JSON). */
export type Block = { type: string; [key: string]: any };

export interface SlackContent {
  /** Fallback text (notifications, screen readers, clients without blocks). */
  text: string;
  blocks: Block[];
}

/** The Stop button on a run's status message (handled in interactive.ts). */
export const STOP_ACTION = "deckhand_stop";
/** The Follow-up button on a run's status message: opens a modal for the run's next input (followup.ts). */
export const FOLLOWUP_ACTION = "deckhand_followup";

/** Slack's limit for a section's text is 3000 characters; stay under it. */
export const SECTION_MAX = 2900;
/** How much of the agent's answer the final message shows before linking to the run page. */
export const SUMMARY_MAX = 2400;
export const MAX_FILES_SHOWN = 10;
export const MAX_TODOS_SHOWN = 12;
const FALLBACK_MAX = 300;

// ------------------------------------------------------------------------------------------------------------
// Formatting helpers
// ------------------------------------------------------------------------------------------------------------

/** Escape text for mrkdwn: Slack only requires &, < and >. */
export function escapeMrkdwn(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export function fmtDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
}

export function fmtCount(n: number): string {
  if (n < 1000) return String(n);
  if (n < 1_000_000) return `${(n / 1000).toFixed(n < 10_000 ? 1 : 0)}k`;
  return `${(n / 1_000_000).toFixed(1)}M`;
}

const oneLine = (s: string, n: number) => clip(s.replace(/\s+/g, " ").trim(), n);

/** Cut `s` to at most `max` characters at a line or word boundary, marking the cut with "…". */
export function cut(s: string, max: number): { text: string; cut: boolean } {
  if (s.length <= max) return { text: s, cut: false };
  let end = max - 1;
  const nl = s.lastIndexOf("\n", end);
  const sp = s.lastIndexOf(" ", end);
  if (nl > max * 0.8) end = nl;
  else if (sp > max * 0.8) end = sp;
  return { text: `${s.slice(0, end).trimEnd()}…`, cut: true };
}

/**
 * Markdown (what models write) → Slack mrkdwn, escaped. Code spans and blocks are kept verbatim (escaped only);
 * **bold** → *bold*, *italic* → _italic_, headings → bold lines, [text](url) → <url|text>, "- " lists → "• ".
 */
export function markdownToMrkdwn(md: string): string {
  const parts = md.split(/(```[\s\S]*?(?:```|$)|`[^`\n]+`)/g);
  return parts
    .map((part, i) => {
      if (i % 2 === 1) {
        // code: drop a language tag after the opening fence (Slack shows it as text)
        return escapeMrkdwn(part.replace(/^```[\w+-]*\n/, "```\n"));
      }
      const links: string[] = [];
      let t = part.replace(/\[([^\]\n]+)\]\((https?:\/\/[^)\s]+)\)/g, (_m, label: string, url: string) => {
        links.push(`<${url.replace(/[<>|]/g, encodeURIComponent)}|${escapeMrkdwn(label).replace(/\|/g, "¦")}>`);
        return `\u0002${links.length - 1}\u0002`;
      });
      t = escapeMrkdwn(t);
      t = t
        .replace(/^#{1,6}\s+(.+?)\s*#*$/gm, "\u0001$1\u0001")
        .replace(/\*\*(?=\S)([^*\n]+?)\*\*/g, "\u0001$1\u0001")
        .replace(/__(?=\S)([^_\n]+?)__/g, "\u0001$1\u0001")
        .replace(/(^|[^*\w])\*(?=\S)([^*\n]+?)\*(?!\w)/g, "$1_$2_")
        .replace(/~~(?=\S)([^~\n]+?)~~/g, "~$1~")
        .replace(/^(\s*)[-*+]\s+/gm, "$1• ")
        .replace(/\u0001/g, "*");
      return t.replace(/\u0002(\d+)\u0002/g, (_m, n: string) => links[Number(n)]!);
    })
    .join("");
}

/**
 * The agent's text as mrkdwn that fits one section (with room for the "full text" link): cut on the Markdown
 * side so no link, entity or code fence is broken.
 */
export function agentText(md: string, fullTextUrl: string, max = SUMMARY_MAX, label = ""): string {
  const src = md.trim();
  let limit = Math.min(max, src.length);
  for (;;) {
    const c = cut(src, limit);
    let text = c.text;
    if (c.cut && (text.match(/```/g)?.length ?? 0) % 2 === 1) text += "\n```";
    let out = label + markdownToMrkdwn(text);
    if (c.cut) out += `\n<${fullTextUrl}|Read the full text on the run page>`;
    if (out.length <= SECTION_MAX || limit < 200) return out.length <= SECTION_MAX ? out : `${out.slice(0, SECTION_MAX - 60)}…\n<${fullTextUrl}|Full text>`;
    limit = Math.floor(limit * 0.8);
  }
}

const section = (text: string): Block => ({ type: "section", text: { type: "mrkdwn", text } });
const context = (...texts: string[]): Block => ({ type: "context", elements: texts.filter(Boolean).slice(0, 10).map((text) => ({ type: "mrkdwn", text })) });

// ------------------------------------------------------------------------------------------------------------
// Run state in words
// ------------------------------------------------------------------------------------------------------------

const PHASE_WORDS: Record<string, string> = {
  queued: "Queued",
  provisioning: "Starting a sandbox",
  provision_attempt: "Starting a sandbox",
  sandbox_created: "Cloning the repo",
  repo_cloned: "Starting the agent",
  opencode_started: "Starting the agent",
  relay_started: "Starting the agent",
  opencode_ready: "Starting the agent",
};

export const STATUS_EMOJI: Record<string, string> = {
  queued: ":hourglass_flowing_sand:",
  provisioning: ":gear:",
  running: ":hammer_and_wrench:",
  idle: ":white_check_mark:",
  failed: ":x:",
  cancelled: ":black_square_for_stop:",
  closed: ":lock:",
};

/** "Starting a sandbox", "Working", "Done", ... */
export function phaseLabel(v: Pick<RunView, "status" | "phases">): string {
  switch (v.status) {
    case "queued":
      return "Queued";
    case "provisioning": {
      const last = [...v.phases].reverse().find((p) => p.phase in PHASE_WORDS && p.phase !== "queued");
      return last ? PHASE_WORDS[last.phase]! : "Starting a sandbox";
    }
    case "running":
      return "Working";
    case "idle":
      return "Done";
    case "failed":
      return "Failed";
    case "cancelled":
      return "Cancelled";
    case "closed":
      return "Closed";
    default:
      return v.status;
  }
}

/** Why a run failed, in plain words, plus what to do about it (the catalogue in runs/model.ts). */
export function failureReason(v: Pick<RunView, "reason" | "failureCode" | "status">): { reason: string; hint: string | null } {
  const { reason, hint } = describeFailure(v);
  return { reason: oneLine(reason, 600), hint };
}

interface ResultShape {
  summary?: string | null;
  filesChanged?: { path: string; additions: number; deletions: number }[];
  additions?: number;
  deletions?: number;
  pushed?: boolean;
  pushError?: string;
  url?: string;
  pullRequestUrl?: string;
  error?: { message: string; code: string } | null;
}

const resultOf = (v: RunView): ResultShape => (v.result ?? {}) as ResultShape;

function todoLines(v: RunView): string | null {
  if (!v.todos.length) return null;
  const icon = (s: string) => (s === "completed" ? "✓" : s === "in_progress" ? "▸" : s === "cancelled" ? "✗" : "○");
  const shown = v.todos.slice(0, MAX_TODOS_SHOWN).map((t) => {
    const line = `${icon(t.status)} ${escapeMrkdwn(oneLine(t.content, 150))}`;
    return t.status === "completed" || t.status === "cancelled" ? `~${line}~` : t.status === "in_progress" ? `*${line}*` : line;
  });
  const more = v.todos.length - shown.length;
  return `*Plan*\n${shown.join("\n")}${more > 0 ? `\n…and ${more} more` : ""}`;
}

// ------------------------------------------------------------------------------------------------------------
// Messages
// ------------------------------------------------------------------------------------------------------------

/**
 * The status message, edited in place: phase, current action, the agent's todo list, elapsed time.
 * `elapsed: false` leaves the time out (to compare two contents).
 */
export function statusContent(v: RunView, opts: { elapsed?: boolean } = {}): SlackContent {
  const withTime = opts.elapsed !== false;
  const phase = phaseLabel(v);
  const emoji = STATUS_EMOJI[v.status] ?? ":grey_question:";
  const time = withTime ? ` · ${fmtDuration(v.durationMs)}` : "";
  const working = v.status === "running";
  const action = working ? (v.currentAction ?? "Thinking") : null;
  const blocks: Block[] = [];
  let head = `${emoji} *${phase}*${time}`;
  if (action) head += `\n${escapeMrkdwn(oneLine(action, 200))}…`;
  if (v.status === "queued" && v.queue && v.queue.waitingFor !== "nothing") head += `\n${escapeMrkdwn(v.queue.note)}`; // position and why (src/runs/queue.ts)
  if (v.status === "idle") head += " — the result is below.";
  if (v.status === "failed" || v.status === "cancelled") head += `: ${escapeMrkdwn(failureReason(v).reason)}`;
  blocks.push(section(head));
  const todos = todoLines(v);
  if (todos && (working || v.status === "idle")) blocks.push(section(clip(todos, SECTION_MAX)));
  const live = isActive(v.status);
  const buttons: Block[] = [];
  if (live) {
    buttons.push({
      type: "button",
      action_id: STOP_ACTION,
      text: { type: "plain_text", text: "Stop" },
      style: "danger",
      value: v.id,
      confirm: { title: { type: "plain_text", text: "Stop this run?" }, text: { type: "plain_text", text: "The agent stops now; what it changed so far is not delivered." }, confirm: { type: "plain_text", text: "Stop" }, deny: { type: "plain_text", text: "Keep going" } },
    });
  }
  // Follow-up while the run can take one (working or idle); once it is over, a thread reply starts a new run.
  if (!isTerminal(v.status)) buttons.push({ type: "button", action_id: FOLLOWUP_ACTION, text: { type: "plain_text", text: "Follow-up" }, value: v.id });
  if (buttons.length) blocks.push({ type: "actions", block_id: "deckhand_run", elements: buttons });
  blocks.push(
    context(
      `\`${escapeMrkdwn(v.repo)}\``,
      `<${v.url}|Run page>`,
      live ? "Reply in this thread to steer · `stop` to cancel" : v.status === "idle" ? "Reply in this thread to continue" : "",
    ),
  );
  const text = escapeMrkdwn(oneLine(`${phase}${action ? `: ${action}` : ""}${withTime ? ` (${fmtDuration(v.durationMs)})` : ""} — ${v.title}`, FALLBACK_MAX));
  return { text, blocks };
}

/** The message posted once when a run goes idle: what was done, files, duration, usage, links. */
export function finalContent(v: RunView): SlackContent {
  const r = resultOf(v);
  const files = r.filesChanged ?? [];
  const blocks: Block[] = [];
  blocks.push(section(`:white_check_mark: *Done* in ${fmtDuration(v.durationMs)}`));
  // The agent's words are labelled as the agent's, never shown as Deckhand's own status line.
  if (r.summary?.trim()) blocks.push(section(agentText(r.summary, v.url, SUMMARY_MAX, "_The agent's summary, in its own words:_\n")));
  if (files.length) {
    const add = r.additions ?? files.reduce((a, f) => a + f.additions, 0);
    const del = r.deletions ?? files.reduce((a, f) => a + f.deletions, 0);
    const lines = files.slice(0, MAX_FILES_SHOWN).map((f) => `• \`${escapeMrkdwn(oneLine(f.path, 120))}\` +${f.additions} −${f.deletions}`);
    const more = files.length - lines.length;
    blocks.push(
      section(
        `*${files.length} file${files.length === 1 ? "" : "s"} changed* (+${add} −${del})\n${lines.join("\n")}${more > 0 ? `\n…and ${more} more on the <${v.url}#diff|run page>` : ""}`,
      ),
    );
  } else {
    blocks.push(section("No files changed."));
  }
  if (r.error?.message) blocks.push(section(`:warning: The agent reported a problem: ${escapeMrkdwn(oneLine(r.error.message, 400))}`));
  if (files.length && !r.pushed && r.pushError) {
    blocks.push(section(`:warning: The branch could not be pushed (${escapeMrkdwn(oneLine(r.pushError, 300))}). The diff is on the run page.`));
  }
  const links: string[] = [];
  if (r.pullRequestUrl) links.push(`<${r.pullRequestUrl}|Pull request>`);
  if (files.length) links.push(`<${r.pullRequestUrl ? `${v.url}#diff` : (r.url ?? `${v.url}#diff`)}|Diff>`);
  links.push(`<${v.url}|Run page>`);
  blocks.push(section(links.join("  ·  ")));
  const facts: string[] = [];
  if (files.length && r.pushed) facts.push(`Branch \`${escapeMrkdwn(v.branch)}\``);
  const tokens = v.usage.input + v.usage.output + v.usage.reasoning;
  if (tokens) facts.push(`${fmtCount(tokens)} tokens (${fmtCount(v.usage.input)} in, ${fmtCount(v.usage.output)} out)`);
  if (v.usage.cost > 0) facts.push(`$${v.usage.cost < 0.01 ? v.usage.cost.toFixed(4) : v.usage.cost.toFixed(2)}`);
  facts.push("Reply in this thread to continue");
  blocks.push(context(...facts));
  const summaryLine = r.summary?.trim() ? `: ${r.summary.trim()}` : "";
  const text = escapeMrkdwn(oneLine(`Done in ${fmtDuration(v.durationMs)}${files.length ? ` (${files.length} file${files.length === 1 ? "" : "s"} changed)` : ""}${summaryLine}`, FALLBACK_MAX));
  return { text, blocks };
}

/** The message posted once when a run fails or is cancelled: the reason in plain words. */
export function endContent(v: RunView): SlackContent {
  const { reason, hint } = failureReason(v);
  const cancelled = v.status === "cancelled";
  const emoji = cancelled ? STATUS_EMOJI.cancelled : STATUS_EMOJI.failed;
  const word = cancelled ? "Cancelled" : "Failed";
  const blocks: Block[] = [section(`${emoji} *${word}* after ${fmtDuration(v.durationMs)}: ${escapeMrkdwn(reason)}`)];
  if (hint) blocks.push(section(escapeMrkdwn(hint)));
  blocks.push(context(`<${v.url}|Run page>`, cancelled ? "Mention me to start again" : "Reply in this thread to try again"));
  return { text: escapeMrkdwn(oneLine(`${word}: ${reason}`, FALLBACK_MAX)), blocks };
}

/** The answer to `status` in a run's thread. */
export function statusReply(v: RunView): SlackContent {
  const s = statusContent(v);
  return { text: s.text, blocks: s.blocks };
}

export function listRepos(allowed: string[]): string {
  return allowed.length ? allowed.map((n) => `\`${escapeMrkdwn(n)}\``).join(", ") : "none (the server has no REPOS configured)";
}

export function askRepoText(allowed: string[]): string {
  return `Which repo should I work in? Reply in this thread with \`repo=<name>\` (or mention me again with it). Allowed: ${listRepos(allowed)}.`;
}

/** A repo picked from the "which repo?" question (handled in interactive.ts). */
export const REPO_ACTION = "deckhand_repo";

/** "Which repo?" with a picker: a button per repo (up to five) or a menu (up to 100), plus the typed way. */
export function askRepoContent(allowed: string[]): SlackContent {
  const text = askRepoText(allowed);
  const blocks: Block[] = [section(escapeMrkdwn("Which repo should I work in?") + " Pick one, or reply in this thread with `repo=<name>`.")];
  const names = allowed.slice(0, 100);
  if (names.length && names.length <= 5) {
    blocks.push({ type: "actions", block_id: "deckhand_repo", elements: names.map((n, i) => ({ type: "button", action_id: `${REPO_ACTION}_${i}`, text: { type: "plain_text", text: n.slice(0, 75) }, value: n })) });
  } else if (names.length) {
    blocks.push({
      type: "actions",
      block_id: "deckhand_repo",
      elements: [{ type: "static_select", action_id: `${REPO_ACTION}_menu`, placeholder: { type: "plain_text", text: "Choose a repo" }, options: names.map((n) => ({ text: { type: "plain_text", text: n.slice(0, 75) }, value: n })) }],
    });
  }
  return { text, blocks };
}

export function unknownRepoText(name: string, allowed: string[]): string {
  return `I can't work in \`${escapeMrkdwn(name)}\`: it is not one of the allowed repos (${listRepos(allowed)}). No run was started.`;
}

export function helpText(allowed: string[]): string {
  return [
    "Mention me with a task to start a run: `@Deckhand [repo=<name>] <task>`.",
    "In a run's thread: reply to steer it (or to continue it once it is done), `stop` to cancel, `status` for where it is.",
    `Repos: ${listRepos(allowed)}.`,
  ].join("\n");
}

/** How much of a follow-up the thread line shows. */
const ECHO_MAX = 500;

/**
 * The line a thread shows for a follow-up it did not see as a reply: sent with the Follow-up form, or from
 * elsewhere (`via`: "the run page", "the CLI"...). Pure.
 */
export function followUpEcho(author: string, text: string, via?: string): string {
  const t = clip(text, ECHO_MAX);
  const who = escapeMrkdwn(author.replace(/[*_~`\n]/g, " ").slice(0, 80));
  return `:inbox_tray: Follow-up from *${who}*${via ? ` (${escapeMrkdwn(via)})` : ""}: ${escapeMrkdwn(t)}`;
}
