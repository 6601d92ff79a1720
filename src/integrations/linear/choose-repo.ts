/**
 * Which repo a Linear request is about: `repo=<name>` in the text, else the team mapping
 * (LINEAR_TEAM_REPOS=ENG=api), else DEFAULT_REPO; otherwise we have to ask. Pure.
 */
export type RepoChoice =
  | { repo: string; how: "text" | "team" | "default" }
  | { repo: null; reason: "none" | "unknown"; asked?: string; allowed: string[] };

const REPO_RE = /(?:^|[\s(`"'])repo\s*[=:]\s*`?([\w.\-/]+)`?/i;

/** `repo=<name>` (or `repo: name`) anywhere in the text. */
export function repoFromText(text: string | null | undefined): string | null {
  const m = REPO_RE.exec(text ?? "");
  return m ? m[1]!.replace(/[.,;:]+$/, "") : null;
}

export function chooseRepo(o: {
  texts: (string | null | undefined)[];
  teamKey?: string | null;
  teamRepos: Record<string, string>;
  defaultRepo?: string | null;
  allowed: string[];
}): RepoChoice {
  for (const t of o.texts) {
    const named = repoFromText(t);
    if (!named) continue;
    const exact = o.allowed.find((a) => a.toLowerCase() === named.toLowerCase());
    if (exact) return { repo: exact, how: "text" };
    return { repo: null, reason: "unknown", asked: named, allowed: o.allowed };
  }
  const team = o.teamKey ? o.teamRepos[o.teamKey] ?? o.teamRepos[o.teamKey.toUpperCase()] : undefined;
  if (team && o.allowed.includes(team)) return { repo: team, how: "team" };
  if (o.defaultRepo && o.allowed.includes(o.defaultRepo)) return { repo: o.defaultRepo, how: "default" };
  return { repo: null, reason: "none", allowed: o.allowed };
}

/** An answer to "which repo?": `repo=<name>`, or just one of the allowed names. Pure. */
export function repoFromAnswer(text: string, allowed: string[]): string | null {
  const named = repoFromText(text) ?? text.trim().replace(/^`|`$/g, "").replace(/[.!]+$/, "");
  const exact = allowed.find((a) => a.toLowerCase() === named.toLowerCase());
  if (exact) return exact;
  // A sentence that names exactly one allowed repo as a word ("use web please").
  const words = new Set(text.toLowerCase().split(/[^\w.\-/]+/).filter(Boolean));
  const hits = allowed.filter((a) => words.has(a.toLowerCase()));
  return hits.length === 1 ? hits[0]! : null;
}

/** The elicitation text asking which repo. Pure. */
export function askRepoText(choice: Extract<RepoChoice, { repo: null }>): string {
  const list = choice.allowed.map((a) => `\`${a}\``).join(", ");
  if (!choice.allowed.length) return "I can't start: no repositories are configured on this Deckhand (REPOS is empty).";
  const lead = choice.reason === "unknown" ? `I don't know a repo called \`${choice.asked}\`.` : "Which repository should I work in?";
  return `${lead} Reply with one of: ${list} (for example \`repo=${choice.allowed[0]}\`).`;
}
