/**
 * What of a diff is drawn on the page: binary files and very large files are summarised (name, size) instead of
 * drawn, so one generated 3 MB file or an image does not make the page unusable. The patch download and the
 * pushed branch keep the whole change. Pure.
 */

/** A file's part of the diff larger than this is summarised rather than drawn. */
export const MAX_DRAWN_FILE_CHARS = 60_000;

export interface SkippedFile {
  path: string;
  why: "binary" | "large";
  chars: number;
}

const pathOf = (header: string): string => {
  const m = /^diff --git a\/(.*?) b\/(.*)$/m.exec(header);
  return m ? m[2]! : header.slice(11, 211);
};

/** Splits `diff` by file; returns the part to draw and the files left out. */
export function summarizeDiff(diff: string, maxFileChars = MAX_DRAWN_FILE_CHARS): { drawn: string; skipped: SkippedFile[] } {
  const starts: number[] = [];
  const re = /^diff --git /gm;
  for (let m = re.exec(diff); m; m = re.exec(diff)) starts.push(m.index);
  if (!starts.length) return { drawn: diff, skipped: [] };
  const parts: string[] = starts[0]! > 0 ? [diff.slice(0, starts[0])] : [];
  const skipped: SkippedFile[] = [];
  starts.forEach((at, i) => {
    const chunk = diff.slice(at, starts[i + 1] ?? diff.length);
    const head = chunk.slice(0, 2000);
    const binary = /^(GIT binary patch|Binary files .* differ)$/m.test(head);
    if (!binary && chunk.length <= maxFileChars) return void parts.push(chunk);
    skipped.push({ path: pathOf(chunk.slice(0, 1000)), why: binary ? "binary" : "large", chars: chunk.length });
  });
  return { drawn: parts.join(""), skipped };
}
