/**
 * The agent's words, shown as the agent's: text that came out of the sandbox (summaries, final answers, failure
 * details) is quoted and attributed, and in Markdown that leaves the building (pull-request bodies, Linear) its
 * `@mentions`, raw links and images are neutralised so the agent cannot ping people, plant links or load images
 * under Deckhand's name. Pure.
 */

const MAX_AGENT_CHARS = 20_000;

/** How every surface labels the agent's words: "The agent's summary" (its own words, not checked by Deckhand). */
export function agentAttribution(what = "summary"): { label: string; note: string } {
  return { label: `The agent's ${what}`, note: "its own words, not checked by Deckhand" };
}

/** Markdown with the agent's mentions, links and images made inert (shown as code, not followed or loaded). */
export function neutralizeAgentMarkdown(text: string): string {
  let s = text.slice(0, MAX_AGENT_CHARS);
  // Raw HTML (img, a, details...) is shown, not rendered.
  s = s.replace(/</g, "&lt;").replace(/>/g, "&gt;");
  // Images: ![alt](url) → [image: alt]
  s = s.replace(/!\[([^\]]*)\]\([^)]*\)/g, (_m, alt: string) => `[image: ${alt.replace(/[[\]]/g, "")}]`);
  // Links: [text](url) → text (`url`); again while a link's label held another (`[[x](u)](//evil)` left a live link).
  for (let i = 0, before = ""; i < 20 && before !== s; i++) {
    before = s;
    s = s.replace(/\[([^\]]*)\]\(([^)\s]*)[^)]*\)/g, (_m, label: string, url: string) => `${label} (${code(url)})`);
  }
  // Whatever still reads as `[label](target)` (brackets in the label, `[[x]](//evil)`): the `(` escaped, so no link.
  s = s.replace(/\]\(/g, "]\\(");
  // Reference-style definitions (`[1]: //evil.example`, then `[click][1]`): shown as text, never a link target.
  s = s.replace(/^( {0,3})\[([^\]\n]*)\]:/gm, (_m, indent: string, label: string) => `${indent}\\[${label}]:`);
  // Bare URLs (autolinked by GitHub and Linear).
  s = s.replace(/(?<!`)\b((?:https?|ftp|mailto|javascript|data):[^\s`)]+)/gi, (_m, url: string) => code(url));
  s = s.replace(/(?<![\w`/])(www\.[^\s`)]+)/gi, (_m, url: string) => code(url));
  // @mentions (people, teams) and #references are written as code: nobody is notified.
  s = s.replace(/(^|[^\w`])@([A-Za-z0-9][\w.-]*(?:\/[\w.-]+)?)/g, (_m, pre: string, name: string) => `${pre}${code(`@${name}`)}`);
  return s;
}

function code(s: string): string {
  return `\`${s.replace(/`/g, "'")}\``;
}

/** The agent's words as a quoted, attributed block: `**The agent's summary** (its own words): > ...`. */
export function quoteAgent(text: string, what = "summary"): string {
  const safe = neutralizeAgentMarkdown(text.trim());
  const quoted = safe
    .split("\n")
    .map((l) => `> ${l}`)
    .join("\n");
  const cut = text.trim().length > MAX_AGENT_CHARS ? `\n\n… (${what} shortened; the full text is on the run page)` : "";
  const { label, note } = agentAttribution(what);
  return `**${label}** (${note}):\n\n${quoted}${cut}`;
}
