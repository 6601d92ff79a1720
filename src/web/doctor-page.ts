/** The dashboard's set-up checks: the same list `deckhand doctor` prints, for signed-in admins. Pure. */
import type { CheckResult } from "../ops/doctor.ts";
import { esc } from "./html.ts";
import { shell } from "./layout.ts";

export function renderDoctorPage(results: CheckResult[], opts: { user: string | null; csrf: string }): string {
  const failed = results.filter((r) => r.status === "fail").length;
  const rows = results
    .map(
      (r) => `<tr data-check="${esc(r.name)}" data-status="${r.status}"><td><span class="tag ${r.status === "ok" ? "done" : r.status === "fail" ? "failed" : "pending"}">${r.status}</span></td><td>${esc(r.name)}</td><td>${esc(r.detail)}${r.status === "fail" && r.fix ? `<div class="small">Fix: ${esc(r.fix)}</div>` : ""}</td></tr>`,
    )
    .join("\n");
  const body = `<h1>Set-up checks</h1>
<p role="status">${failed ? `${failed} check${failed > 1 ? "s" : ""} failed.` : "All checks passed."} The same checks run with <code>deckhand doctor</code>.</p>
<table class="runs"><thead><tr><th>Result</th><th>Check</th><th>Detail</th></tr></thead><tbody>
${rows}
</tbody></table>`;
  return shell({ title: "Set-up checks", body, user: opts.user, csrf: opts.csrf });
}
