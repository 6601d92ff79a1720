/** The plain run page: status, phases, the event timeline and the diff. A pure render function. */
import type { RunView } from "../runs/run-view.ts";
import type { TimelineItem } from "../events/vocabulary.ts";
import { isTerminal } from "../runs/state-machine.ts";
import { esc } from "./html.ts";

function item(t: TimelineItem): string {
  const time = `<time datetime="${esc(t.at)}">${esc(t.at.slice(11, 19))}</time>`;
  switch (t.kind) {
    case "tool":
      return `<li class="tool ${esc(t.call.status)}">${time} <b>${esc(t.call.verb)}</b> ${esc(t.call.target)}${t.call.result ? ` <span class="muted">— ${esc(t.call.result)}</span>` : ""}</li>`;
    case "message":
      return `<li class="msg ${t.role}">${time} <b>${t.role === "user" ? "You" : "Agent"}:</b> <div class="text">${esc(t.text)}</div></li>`;
    case "todo":
      return `<li class="todo">${time} <b>Plan</b><ul>${t.todos.map((x) => `<li>${x.status === "completed" ? "☑" : "☐"} ${esc(x.content)}</li>`).join("")}</ul></li>`;
    case "error":
      return `<li class="error">${time} <b>Error:</b> ${esc(t.message)}</li>`;
    case "status":
      return `<li class="status">${time} ${esc(t.text)}</li>`;
  }
}

function diffHtml(diff: string): string {
  return diff
    .split("\n")
    .map((l) => {
      const cls = l.startsWith("+++") || l.startsWith("---") ? "file" : l.startsWith("+") ? "add" : l.startsWith("-") ? "del" : l.startsWith("@@") ? "hunk" : l.startsWith("diff ") ? "file" : "";
      return `<span class="${cls}">${esc(l)}</span>`;
    })
    .join("\n");
}

export function renderRunPage(view: RunView & { timeline: TimelineItem[] }, diff: string | null): string {
  const r = view.result as { summary?: string; filesChanged?: { path: string; additions: number; deletions: number }[]; pushed?: boolean; pullRequestUrl?: string; pushError?: string } | null;
  const live = !isTerminal(view.status) && view.status !== "idle";
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
${live ? '<meta http-equiv="refresh" content="5">' : ""}
<meta name="robots" content="noindex">
<title>${esc(view.title)} · Deckhand</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:960px;margin:2rem auto;padding:0 1rem;color:#1b1f24}
.status{display:inline-block;padding:.1rem .5rem;border-radius:4px;background:#eef;font-weight:600}
.status.failed,.status.cancelled{background:#fdd}.status.idle,.status.closed{background:#dfd}
.muted{color:#57606a}ul.timeline{list-style:none;padding:0}ul.timeline>li{padding:.25rem 0;border-bottom:1px solid #eee}
.text{white-space:pre-wrap}.error{color:#a40e26}pre.diff{background:#f6f8fa;padding:1rem;overflow:auto;font-size:13px}
.add{color:#116329;background:#dafbe1}.del{color:#82071e;background:#ffebe9}.hunk{color:#0550ae}.file{font-weight:700}
</style></head><body>
<h1>${esc(view.title)}</h1>
<p><span class="status ${esc(view.status)}">${esc(view.status)}</span> ${view.reason ? `<span class="reason">${esc(view.reason)}</span>` : ""}</p>
<p class="muted">Run <code>${esc(view.id)}</code> · ${esc(view.repo)} · branch <code>${esc(view.branch)}</code> · from ${esc(view.source)}${view.createdBy ? ` by ${esc(view.createdBy)}` : ""} · ${Math.round(view.durationMs / 1000)} s${view.usage.input + view.usage.output ? ` · ${view.usage.input + view.usage.output} tokens` : ""}</p>
${view.currentAction ? `<p>Now: <b>${esc(view.currentAction)}</b></p>` : ""}
<h2>Task</h2><div class="text">${esc(view.prompt)}</div>
${r?.summary ? `<h2>Result</h2><div class="text">${esc(r.summary)}</div>` : ""}
${r?.pullRequestUrl ? `<p>Pull request: <a href="${esc(r.pullRequestUrl)}">${esc(r.pullRequestUrl)}</a></p>` : ""}
${r?.pushError ? `<p class="error">The branch could not be pushed: ${esc(r.pushError)}</p>` : ""}
${r?.filesChanged?.length ? `<h3>Files changed</h3><ul>${r.filesChanged.map((f) => `<li><code>${esc(f.path)}</code> <span class="add">+${f.additions}</span> <span class="del">-${f.deletions}</span></li>`).join("")}</ul>` : ""}
<h2>Phases</h2><ol>${view.phases.map((p) => `<li>${esc(p.phase)} <span class="muted">${esc(p.at)}</span></li>`).join("")}</ol>
<h2>Timeline</h2><ul class="timeline">${view.timeline.map(item).join("\n") || '<li class="muted">Nothing yet.</li>'}</ul>
<h2 id="diff">Diff</h2>${diff ? `<p><a href="diff.patch">Download patch</a></p><pre class="diff">${diffHtml(diff)}</pre>` : '<p class="muted">No changes yet.</p>'}
</body></html>`;
}
