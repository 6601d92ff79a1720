/**
 * The words of a Slack message, wherever Slack put them: `text`; else the rich-text `blocks` (block-only messages
 * from some clients and apps); plus a message forwarded or shared into it (`attachments` with `is_share`: empty
 * `text`, the message in the attachment's `text` or `message_blocks`) and the files attached (name and link, so
 * the agent knows of them). Bounded. Pure.
 */
const MAX_CHARS = 40_000;
const MAX_ITEMS = 20;

type Json = Record<string, any>;
const isObj = (v: unknown): v is Json => !!v && typeof v === "object" && !Array.isArray(v);
const list = (v: unknown): Json[] => (Array.isArray(v) ? v.filter(isObj).slice(0, MAX_ITEMS * 5) : []);

/** Plain text of rich-text / section blocks, in Slack's markup (`<@U1>`, `<url|label>`) like `text` is. */
export function blocksText(blocks: unknown, depth = 0): string {
  if (depth > 6) return "";
  const out: string[] = [];
  for (const b of list(blocks)) {
    switch (b.type) {
      case "text":
        if (typeof b.text === "string") out.push(b.text);
        break;
      case "link":
        if (typeof b.url === "string") out.push(typeof b.text === "string" && b.text ? `<${b.url}|${b.text}>` : `<${b.url}>`);
        break;
      case "user":
        if (typeof b.user_id === "string") out.push(`<@${b.user_id}>`);
        break;
      case "channel":
        if (typeof b.channel_id === "string") out.push(`<#${b.channel_id}>`);
        break;
      case "emoji":
        if (typeof b.name === "string") out.push(`:${b.name}:`);
        break;
      case "section":
        if (isObj(b.text) && typeof b.text.text === "string") out.push(`${b.text.text}\n`);
        break;
      case "rich_text_list":
        for (const item of list(b.elements)) out.push(`- ${blocksText(item.elements, depth + 1)}\n`);
        break;
      default:
        if (Array.isArray(b.elements)) {
          const inner = blocksText(b.elements, depth + 1);
          out.push(b.type === "rich_text_preformatted" ? `\`\`\`\n${inner}\n\`\`\`\n` : b.type === "rich_text" ? inner : `${inner}\n`);
        }
    }
  }
  return out.join("").replace(/\n{3,}/g, "\n\n").trim();
}

function filesText(files: unknown): string[] {
  return list(files)
    .slice(0, MAX_ITEMS)
    .map((f) => {
      const name = String(f.name ?? f.title ?? "file");
      const link = typeof f.permalink === "string" ? f.permalink : typeof f.url_private === "string" ? f.url_private : "";
      return `Attached file: ${name}${link ? ` (${link})` : ""}`;
    });
}

function attachmentText(a: Json): string {
  const fromBlocks = list(a.message_blocks)
    .map((mb) => blocksText(mb.message?.blocks))
    .filter(Boolean)
    .join("\n");
  const body = (typeof a.text === "string" && a.text.trim()) || fromBlocks || (typeof a.fallback === "string" ? a.fallback.trim() : "");
  const parts: string[] = [];
  if (body) {
    const who = typeof a.author_name === "string" && a.author_name ? ` from ${a.author_name}` : "";
    parts.push(a.is_share || a.is_msg_unfurl ? `Forwarded message${who}:\n${body}` : body);
  }
  parts.push(...filesText(a.files));
  return parts.join("\n");
}

/** Everything a person said in this message event, as one text. */
export function slackMessageText(event: unknown): string {
  if (!isObj(event)) return "";
  const own = (typeof event.text === "string" && event.text.trim()) || blocksText(event.blocks);
  const parts = [own, ...list(event.attachments).slice(0, MAX_ITEMS).map(attachmentText), ...filesText(event.files)].filter((s) => s && s.trim());
  const text = parts.join("\n\n");
  return text.length > MAX_CHARS ? text.slice(0, MAX_CHARS) : text;
}
