/** The list of runs with filters. Pure render functions; the live stream re-sends the rows. */
import type { Run } from "../db/schema.ts";
import { esc } from "./html.ts";
import { ACTIVE_STATUSES, formatDuration, formatUsage, SOURCES, sourceLink, STATUSES } from "./format.ts";
import { shell } from "./layout.ts";
import type { Usage } from "../events/vocabulary.ts";
import { plainStatus } from "../runs/plain-status.ts";

export interface ListFilters {
  status?: string;
  repo?: string;
  source?: string;
}

export type ListRow = Pick<Run, "id" | "status" | "statusReason" | "repo" | "branch" | "title" | "source" | "sourceRef" | "createdBy" | "createdAt" | "finishedAt" | "statusChangedAt" | "result"> & {
  /** Usage so far (from the events) for runs without a result yet. */
  usage?: Usage | null;
};

function duration(r: ListRow, now: Date): number {
  const end = r.finishedAt ?? (r.status === "idle" ? r.statusChangedAt : now);
  return Math.max(0, end.getTime() - r.createdAt.getTime());
}

export function renderRow(r: ListRow, now = new Date()): string {
  const res = (r.result ?? {}) as { pullRequestUrl?: string; usage?: Usage };
  const src = sourceLink(r.source, r.sourceRef);
  const srcText = `${src.label}${src.detail ? ` ${src.detail}` : ""}`;
  const srcHtml = src.href ? `<a href="${esc(src.href)}">${esc(srcText)}</a>` : esc(srcText);
  const pr = res.pullRequestUrl && /^https?:\/\//.test(res.pullRequestUrl) ? ` <a href="${esc(res.pullRequestUrl)}">PR</a>` : "";
  const active = ACTIVE_STATUSES.has(r.status);
  return `<tr id="run-${esc(r.id)}" data-status="${esc(r.status)}">
<td><span class="status s-${esc(r.status)}">${esc(plainStatus(r.status))}</span>${r.statusReason && !active ? `<div class="muted small">${esc(r.statusReason)}</div>` : ""}</td>
<td><a href="/runs/${esc(r.id)}">${esc(r.title)}</a><div class="muted small"><code>${esc(r.id)}</code></div></td>
<td>${srcHtml}</td>
<td>${esc(r.repo)}</td>
<td><code class="small">${esc(r.branch)}</code>${pr}</td>
<td><span${active ? ` data-since="${esc(r.createdAt.toISOString())}"` : ""}>${esc(formatDuration(duration(r, now)))}</span></td>
<td>${esc(formatUsage(res.usage ?? r.usage) || "—")}</td>
<td>${esc(r.createdBy ?? "—")}</td>
</tr>`;
}

export function renderRows(rows: ListRow[], now = new Date()): string {
  return rows.length ? rows.map((r) => renderRow(r, now)).join("\n") : `<tr><td colspan="8" class="muted">No runs match.</td></tr>`;
}

const select = (name: string, label: string, value: string | undefined, options: [string, string][]) =>
  `<div><label for="f-${name}">${label}</label><select id="f-${name}" name="${name}"><option value="">Any</option>${options
    .map(([v, t]) => `<option value="${esc(v)}"${v === value ? " selected" : ""}>${esc(t)}</option>`)
    .join("")}</select></div>`;

export function filterQuery(f: ListFilters): string {
  const q = new URLSearchParams();
  for (const k of ["status", "repo", "source"] as const) if (f[k]) q.set(k, f[k]!);
  const s = q.toString();
  return s ? `?${s}` : "";
}

export function renderRunsList(rows: ListRow[], f: ListFilters, o: { repos: string[]; csrf: string; user: string | null; now?: Date }): string {
  const body = `<h1>Runs</h1>
<form method="get" action="/" class="filters" aria-label="Filter runs">
${select("status", "Status", f.status, STATUSES.map((s) => [s, plainStatus(s)]))}
${select("repo", "Repo", f.repo, o.repos.map((r) => [r, r]))}
${select("source", "Source", f.source, Object.entries(SOURCES))}
<div><button type="submit">Filter</button></div>
</form>
<div class="table-wrap"><table class="runs">
<caption class="visually-hidden">Runs, newest first; updates live</caption>
<thead><tr><th scope="col">Status</th><th scope="col">Task</th><th scope="col">Source</th><th scope="col">Repo</th><th scope="col">Branch / PR</th><th scope="col">Duration</th><th scope="col">Usage</th><th scope="col">Started by</th></tr></thead>
<tbody id="runs-rows">${renderRows(rows, o.now)}</tbody>
</table></div>`;
  return shell({ title: "Runs", body, bodyAttrs: { "data-page": "list", "data-events": `/events${filterQuery(f)}` }, user: o.user, csrf: o.csrf });
}

export function renderLogin(o: { next: string; error?: string }): string {
  const body = `<h1>Sign in</h1>
<form method="post" action="/login" class="login">
<input type="hidden" name="next" value="${esc(o.next)}">
${o.error ? `<p class="error" role="alert">${esc(o.error)}</p>` : ""}
<label for="token">API token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required>
<label for="name">Your name <span class="muted">(shown on follow-ups and stops)</span></label>
<input id="name" name="name" type="text" autocomplete="name" maxlength="80">
<button type="submit">Sign in</button>
</form>
<p class="muted">The API token is the server's <code>API_TOKEN</code> (or the one in <code>DATA_DIR/api-token</code>).</p>`;
  return shell({ title: "Sign in", body, bodyAttrs: { "data-page": "login" } });
}
