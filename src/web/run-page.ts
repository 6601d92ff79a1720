/**
 * One run: status, liveness, the failure reason, the agent's timeline, its plan, the result and the diff. Pure
 * render functions; the page is made of regions that the live stream (SSE) re-sends with the same functions.
 */
import type { TimelineItem } from "../events/vocabulary.ts";
import type { RunView } from "../runs/run-view.ts";
import { describeFailure, isTerminal } from "../runs/model.ts";
import { diffKey, renderDiff, type DiffFormat } from "./diff-view.ts";
import { ACTIVE_STATUSES, ago, formatDuration, formatUsage, sourceLink } from "./format.ts";
import { esc } from "./html.ts";
import { summarizeDiff } from "./diff-summary.ts";
import { assetUrl, shell } from "./layout.ts";
import { plainPhase, plainStatus } from "../runs/plain-status.ts";
import { agentAttribution } from "../integrations/agent-words.ts";
import { renderQuestions } from "./questions-view.ts";

/** A running sandbox that has not sent a heartbeat for this long is shown as quiet (the watchdog decides what to do). */
export const STALE_HEARTBEAT_MS = 60_000;

export type RunPageView = RunView & { timeline: TimelineItem[]; timelineDropped?: number };

export interface RunPageOptions {
  /** Where this page's resources live: `/runs/<id>` (signed in) or `/r/<pageToken>` (the run's link). */
  base: string;
  /** Signed in: follow-up and stop forms (with this CSRF token), link rotation. */
  csrf?: string;
  user?: string | null;
  format?: DiffFormat;
  /** Draw a large diff anyway. */
  fullDiff?: boolean;
  now?: Date;
}

interface RunResultShape {
  summary?: string | null;
  filesChanged?: { path: string; additions: number; deletions: number }[];
  pushed?: boolean;
  pullRequestUrl?: string | null;
  pushError?: string | null;
  usage?: RunView["usage"];
}

const time = (at: string) => `<time datetime="${esc(at)}">${esc(at.slice(11, 19))}</time>`;
const link = (href: string, text: string) => (/^https?:\/\//i.test(href) ? `<a href="${esc(href)}">${esc(text)}</a>` : esc(text));

/** The DOM id of a timeline item: stable across updates (a tool call keeps the seq it first appeared at). */
export const itemId = (t: TimelineItem) => `t-${t.seq}`;

export function renderTimelineItem(t: TimelineItem): string {
  const id = itemId(t);
  switch (t.kind) {
    case "tool": {
      const c = t.call;
      const state = c.status === "error" ? "failed" : c.status === "completed" ? "done" : "working";
      return `<li id="${id}" class="ev tool ${esc(c.status)}">${time(t.at)} <span class="tag ${state}">${esc(state)}</span> <b>${esc(c.verb)}</b>${c.target ? ` <code>${esc(c.target)}</code>` : ""}${c.result ? `<div class="muted small">${esc(c.result)}</div>` : ""}</li>`;
    }
    case "message":
      return `<li id="${id}" class="ev msg ${t.role}">${time(t.at)} <b>${t.role === "user" ? "Prompt" : "Agent"}</b><div class="text">${esc(t.text)}</div></li>`;
    case "todo":
      return `<li id="${id}" class="ev todo">${time(t.at)} <b>Plan updated</b> <span class="muted">(${t.todos.filter((x) => x.status === "completed").length}/${t.todos.length} done)</span></li>`;
    case "error":
      return `<li id="${id}" class="ev error">${time(t.at)} <b>Error:</b> ${esc(t.message)}</li>`;
    case "status":
      return `<li id="${id}" class="ev status">${time(t.at)} ${esc(t.text)}</li>`;
  }
}

export function renderTodos(v: RunPageView): string {
  if (!v.todos.length) return `<p class="muted">No plan yet.</p>`;
  const mark = (s: string) => (s === "completed" ? "done" : s === "in_progress" ? "doing" : s === "cancelled" ? "dropped" : "todo");
  return `<ul class="todos">${v.todos
    .map((t) => `<li class="todo-${mark(t.status)}"><span class="tag ${mark(t.status)}">${mark(t.status)}</span> ${esc(t.content)}</li>`)
    .join("")}</ul>`;
}

/** Title, status, where it came from, liveness and the failure reason. */
export function renderHead(v: RunPageView, now = new Date()): string {
  const src = sourceLink(v.source, v.sourceRef);
  const srcHtml = src.href ? link(src.href, `${src.label}${src.detail ? ` ${src.detail}` : ""}`) : esc(`${src.label}${src.detail ? ` ${src.detail}` : ""}`);
  const r = v.result as RunResultShape | null;
  const usage = formatUsage(v.usage.input + v.usage.output ? v.usage : r?.usage);
  const active = ACTIVE_STATUSES.has(v.status);
  const failed = v.status === "failed" || v.status === "cancelled";
  const silentMs = v.heartbeatAt ? now.getTime() - Date.parse(v.heartbeatAt) : 0;
  const stale = v.status === "running" && silentMs > STALE_HEARTBEAT_MS;
  const liveness = active
    ? `<p class="live-line">${v.currentAction ? `Now: <b>${esc(v.currentAction)}</b> · ` : ""}<span${stale ? ' class="stale"' : ""}>last heartbeat <span data-ago="${esc(v.heartbeatAt ?? "")}">${esc(ago(v.heartbeatAt, now))}</span>${stale ? " — the sandbox has gone quiet" : ""}</span></p>`
    : "";
  return `<h1>${esc(v.title)}</h1>
<p><span class="status s-${esc(v.status)}" data-status="${esc(v.status)}">${esc(plainStatus(v.status))}</span>${!failed && v.reason ? ` <span>${esc(v.reason)}</span>` : ""}</p>
${failed ? `<div class="failure" role="alert"><b>${v.status === "failed" ? "Failed" : "Stopped"}:</b> ${esc(describeFailure(v).reason)}${v.failureCode ? ` <span class="muted">(${esc(v.failureCode)})</span>` : ""}${v.hint ? `<br>${esc(v.hint)}` : ""}</div>` : ""}
<dl class="meta">
<div><dt>Run</dt><dd><code>${esc(v.id)}</code></dd></div>
<div><dt>Repo</dt><dd>${esc(v.repo)}</dd></div>
<div><dt>Branch</dt><dd><code>${esc(v.branch)}</code>${r?.pullRequestUrl ? ` · ${link(r.pullRequestUrl, "pull request")}` : ""}</dd></div>
<div><dt>From</dt><dd>${srcHtml}${v.createdBy ? ` by ${esc(v.createdBy)}` : ""}</dd></div>
<div><dt>Duration</dt><dd><span${active ? ` data-since="${esc(v.createdAt)}"` : ""}>${esc(formatDuration(v.durationMs))}</span></dd></div>
${usage ? `<div><dt>Usage</dt><dd>${esc(usage)}</dd></div>` : ""}
</dl>
${liveness}`;
}

/** The agent's summary, shown as the agent's words: attributed and quoted, as on every other surface (agent-words.ts). */
export function renderAgentSummary(summary: string): string {
  const { label, note } = agentAttribution("summary");
  return `<figure class="agent-words"><figcaption><b>${esc(label)}</b> <span class="muted">(${esc(note)}):</span></figcaption><blockquote class="text">${esc(summary)}</blockquote></figure>`;
}

export function renderResult(v: RunPageView): string {
  const r = v.result as RunResultShape | null;
  if (!r) return `<p class="muted">${isTerminal(v.status) ? "No result: the run ended before the agent finished." : "The result appears here when the agent is done."}</p>`;
  const summary = typeof r.summary === "string" ? r.summary.trim() : "";
  return `${summary ? renderAgentSummary(summary) : `<p class="muted">The agent left no summary.</p>`}
${r.pushError ? `<p class="error">The branch could not be pushed: ${esc(r.pushError)}</p>` : ""}
${r.filesChanged?.length ? `<ul class="files">${r.filesChanged.map((f) => `<li><code>${esc(f.path)}</code> <span class="add">+${f.additions}</span> <span class="del">−${f.deletions}</span></li>`).join("")}</ul>` : `<p class="muted">No files changed.</p>`}`;
}

export function renderPhases(v: RunPageView): string {
  return `<ol class="phases">${v.phases.map((p) => `<li>${esc(plainPhase(p.phase))} ${time(p.at)}</li>`).join("")}</ol>`;
}

/** Diffs bigger than this are not drawn until asked for (a phone should not get megabytes of markup unasked). */
export const INLINE_DIFF_CHARS = 120_000;

export function renderDiffSection(diff: string | null | undefined, base: string, format: DiffFormat, full = false): string {
  if (!diff) return `<p class="muted">No changes yet.</p>`;
  const other: DiffFormat = format === "side-by-side" ? "line-by-line" : "side-by-side";
  const keep = full ? "&amp;full=1" : "";
  const tools = `<p class="diff-tools"><a href="${esc(base)}/diff.patch" download>Download patch</a> · <a href="${esc(base)}?view=${other}${keep}#diff">${other === "side-by-side" ? "Side by side" : "Unified"} view</a></p>`;
  // Binary and very large files are listed, not drawn (the patch and the branch have them).
  const { drawn, skipped } = summarizeDiff(diff);
  const notDrawn = skipped.length
    ? `<p class="muted diff-skipped">Not drawn here (in the patch and the branch): ${skipped
        .slice(0, 50)
        .map((f) => `<code>${esc(f.path)}</code> (${f.why === "binary" ? "binary" : `large, ${Math.round(f.chars / 1024)} KB of diff`})`)
        .join(", ")}${skipped.length > 50 ? ` and ${skipped.length - 50} more` : ""}.</p>`
    : "";
  if (drawn.length > INLINE_DIFF_CHARS && !full) {
    const files = (diff.match(/^diff --git /gm) ?? []).length;
    return `${tools}${notDrawn}<p>This diff is large (${files} files, ${Math.round(diff.length / 1024)} KB). <a href="${esc(base)}?view=${format}&amp;full=1#diff">Show it all</a> or download the patch.</p>`;
  }
  return `${tools}${notDrawn}
${drawn.trim() ? `<div class="diff" data-diff-view>${renderDiff(drawn, format)}</div>` : ""}`;
}

/** The regions the live stream updates, rendered exactly as on the page (`csrf`: signed in, questions answerable). */
export function runRegions(v: RunPageView, now = new Date(), csrf?: string) {
  return {
    status: v.status,
    head: renderHead(v, now),
    questions: renderQuestions(v, csrf),
    result: renderResult(v),
    todos: renderTodos(v),
    phases: renderPhases(v),
    timeline: v.timeline.map((t) => ({ id: itemId(t), html: renderTimelineItem(t) })),
  };
}

function actions(v: RunPageView, o: RunPageOptions): string {
  if (o.csrf === undefined) {
    return `<p class="muted">This link shows the run read-only. <a href="/login?next=${encodeURIComponent(`/runs/${v.id}`)}">Sign in</a> to send a follow-up or stop it.</p>`;
  }
  const c = `<input type="hidden" name="_csrf" value="${esc(o.csrf)}">`;
  return `<form method="post" action="/runs/${esc(v.id)}/follow-up" class="follow-up" data-action>
${c}<label for="follow-up-text">Follow-up prompt</label>
<textarea id="follow-up-text" name="text" rows="3" required placeholder="Also update the README…"></textarea>
<div class="row"><button type="submit">Send follow-up</button> <span class="form-status" role="status" aria-live="polite"></span></div>
</form>
<form method="post" action="/runs/${esc(v.id)}/stop" class="stop" data-action data-confirm="Stop this run?">
${c}<button type="submit" class="danger">Stop run</button> <span class="form-status" role="status" aria-live="polite"></span>
</form>`;
}

function linkTools(v: RunPageView, o: RunPageOptions): string {
  if (o.csrf === undefined) return "";
  return `<details class="share"><summary>Share a read-only link</summary>
<p>Anyone with this link can watch the run (not steer it): <a href="${esc(v.url)}">${esc(v.url)}</a></p>
<form method="post" action="/runs/${esc(v.id)}/rotate-link"><input type="hidden" name="_csrf" value="${esc(o.csrf)}"><button type="submit">Revoke it and make a new link</button></form>
</details>`;
}

export function renderRunPage(view: RunPageView, diff: string | null, opts: Partial<RunPageOptions> = {}): string {
  const o: RunPageOptions = { base: opts.base ?? view.url.replace(/^https?:\/\/[^/]+/, ""), format: "line-by-line", ...opts };
  const now = o.now ?? new Date();
  const r = runRegions(view, now, o.csrf);
  const format = o.format ?? "line-by-line";
  const body = `<div id="run-head">${r.head}</div>
<section aria-label="The agent's questions" id="run-questions">${r.questions}</section>
<section aria-labelledby="h-actions" id="run-actions"><h2 id="h-actions" class="visually-hidden">Steer</h2>${actions(view, o)}</section>
<section aria-labelledby="h-task"><h2 id="h-task">Task</h2><div class="text">${esc(view.prompt)}</div></section>
<section aria-labelledby="h-result"><h2 id="h-result">Result</h2><div id="run-result">${r.result}</div></section>
<div class="cols">
<section aria-labelledby="h-timeline" class="wide"><h2 id="h-timeline">Timeline</h2>
${view.timelineDropped ? `<p class="muted">${view.timelineDropped} earlier steps are not shown; the newest are below.</p>` : ""}
<ol id="run-timeline" class="timeline" aria-live="polite" aria-relevant="additions">${r.timeline.map((t) => t.html).join("\n") || ""}</ol>
<p class="muted empty-timeline">Nothing yet.</p></section>
<aside><section aria-labelledby="h-plan"><h2 id="h-plan">Plan</h2><div id="run-todos">${r.todos}</div></section>
<section aria-labelledby="h-phases"><h2 id="h-phases">Phases</h2><div id="run-phases">${r.phases}</div></section>
${linkTools(view, o)}</aside>
</div>
<section aria-labelledby="diff" class="diff-section"><h2 id="diff">Diff</h2><div id="run-diff" data-diff-key="${diffKey(diff)}">${renderDiffSection(diff, o.base, format, o.fullDiff)}</div></section>`;
  return shell({
    title: view.title,
    body,
    styles: ["diff2html.min.css", "highlight.css"],
    bodyAttrs: { "data-page": "run", "data-status": view.status, "data-events": `${o.base}/events`, "data-diff-format": format, "data-diff-js": assetUrl("diff2html-ui-slim.min.js"), ...(o.fullDiff ? { "data-full-diff": "1" } : {}) },
    user: o.csrf !== undefined ? (o.user ?? null) : undefined,
    csrf: o.csrf,
  });
}
