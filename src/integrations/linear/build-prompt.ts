/** The agent's task text, built from a Linear issue and what the user said. Pure. */

export interface IssueContext {
  identifier: string;
  title: string;
  description?: string | null;
  url?: string | null;
  /** Linear's own formatted context (agent sessions, `created` only). */
  promptContext?: string | null;
  /** The comment that asked for the work (a mention), if any. */
  request?: string | null;
  /** Earlier comments worth knowing, oldest first. */
  comments?: { author?: string | null; body: string }[];
  /** Workspace / team guidance for agents. */
  guidance?: string[];
}

const MAX_COMMENTS = 20;
const MAX_COMMENT_CHARS = 4_000;
const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);
/** Our own bookkeeping in a comment (`repo=api`) is not part of the task. */
const stripRepo = (s: string) => s.replace(/(^|\s)repo\s*[=:]\s*`?[\w.\-/]+`?/gi, "$1").trim();

export function buildPrompt(c: IssueContext): string {
  const parts: string[] = [`Linear issue ${c.identifier}: ${c.title}`];
  if (c.url) parts.push(`URL: ${c.url}`);
  if (c.promptContext?.trim()) {
    // Linear's context already holds the issue, the triggering comment and the thread.
    parts.push("", "Context from Linear:", c.promptContext.trim());
  } else {
    if (c.description?.trim()) parts.push("", "Description:", stripRepo(c.description.trim()));
    const comments = (c.comments ?? []).filter((x) => x.body?.trim()).slice(-MAX_COMMENTS);
    if (comments.length) {
      parts.push("", "Comments (oldest first):");
      for (const x of comments) parts.push(`- ${x.author ? `${x.author}: ` : ""}${clip(x.body.trim(), MAX_COMMENT_CHARS).replace(/\n/g, "\n  ")}`);
    }
  }
  const request = c.request ? stripRepo(c.request) : "";
  if (request) parts.push("", "Request:", request);
  if (c.guidance?.length) parts.push("", "Guidance:", ...c.guidance.map((g) => `- ${g}`));
  parts.push("", `Work on this issue in the repository. When you are done, summarize what you changed.`);
  return parts.join("\n");
}

/** A follow-up that continues a finished run: the original task plus the new instruction. Pure. */
export function continuationPrompt(previousPrompt: string, text: string): string {
  return `${previousPrompt}\n\nFollow-up from Linear (continue from the work already on this branch):\n${text.trim()}`;
}
