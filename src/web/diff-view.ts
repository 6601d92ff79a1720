/** The diff as HTML, rendered on the server by diff2html (the browser adds syntax highlighting). Pure. */
import crypto from "node:crypto";
import * as Diff2Html from "diff2html";

export type DiffFormat = "line-by-line" | "side-by-side";

export function diffFormat(v: unknown): DiffFormat {
  return v === "side-by-side" || v === "side" ? "side-by-side" : "line-by-line";
}

/** A short fingerprint of a diff: the live page re-sends the diff only when this changes. */
export function diffKey(diff: string | null | undefined): string {
  return diff ? crypto.createHash("sha1").update(diff).digest("hex").slice(0, 12) : "none";
}

export function renderDiff(diff: string, format: DiffFormat): string {
  return Diff2Html.html(diff, {
    outputFormat: format,
    drawFileList: true,
    matching: "lines",
    diffMaxChanges: 4000,
    diffMaxLineLength: 2000,
    renderNothingWhenEmpty: false,
  });
}
