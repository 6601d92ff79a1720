/**
 * Branch guard: a run never pushes to the repository's default branch or to main, master or release/*, whatever
 * branch name it was given (Linear suggests one per issue). Such a name becomes `deckhand/<slug>`. Pure.
 */
const PROTECTED = [/^main$/i, /^master$/i, /^release(\/|$)/i, /^head$/i];

/** Is `branch` one a run must never push to (`defaultBranch`: the remote's default, when known)? */
export function isProtectedBranch(branch: string, defaultBranch?: string | null): boolean {
  const b = branch.replace(/^refs\/heads\//, "");
  if (defaultBranch && b === defaultBranch.replace(/^(refs\/heads\/|origin\/)/, "")) return true;
  return PROTECTED.some((re) => re.test(b));
}

/**
 * The branch a run works on: the requested one, or `deckhand/<slug>-<id>` when it is protected (or the base ref).
 * A base ref that is one of Deckhand's own branches (a continuation of an earlier run) may be pushed to again.
 */
export function guardBranch(requested: string, runId: string, baseRef?: string | null): string {
  const ownBranch = !!baseRef && /^deckhand\//.test(baseRef);
  if (!isProtectedBranch(requested, ownBranch ? null : baseRef)) return requested;
  const slug = requested.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 40) || "task";
  return `deckhand/${slug}-${runId.slice(2, 7)}`;
}
