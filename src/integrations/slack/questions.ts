/**
 * The agent's questions in a Slack thread: a message with a button per option (at most five, Slack's good
 * practice) or Approve / Reject for an approval, and "reply in this thread" for words of one's own; once settled,
 * the same message is edited to say how it was answered. Pure content, plus the button's value codec.
 */
import type { PendingQuestion, SettledQuestion } from "../../events/questions.ts";
import { type Block, escapeMrkdwn } from "./messages.ts";

export const ANSWER_ACTION = "deckhand_answer";
const BUTTONS_MAX = 5;

/** What a button carries back: run, question, label. Slack caps a value at 2000 characters. */
export interface AnswerValue {
  r: string;
  q: string;
  a: string;
}

export function encodeAnswer(v: AnswerValue): string {
  return JSON.stringify(v).slice(0, 2000);
}

/** A button's value, or null when it is not one of ours (anything may arrive in a signed payload). */
export function decodeAnswer(value: unknown): AnswerValue | null {
  if (typeof value !== "string" || value.length > 2000) return null;
  try {
    const v = JSON.parse(value) as Record<string, unknown>;
    return typeof v.r === "string" && typeof v.q === "string" && typeof v.a === "string" ? { r: v.r, q: v.q, a: v.a } : null;
  } catch {
    return null;
  }
}

const plain = (s: string, n: number) => ({ type: "plain_text", text: s.length > n ? `${s.slice(0, n - 1)}…` : s || "?", emoji: false });

export function questionContent(runId: string, q: PendingQuestion): { text: string; blocks: Block[] } {
  const one = q.items.length === 1 ? q.items[0]! : null;
  const heading = q.kind === "permission" ? "*The agent asks for approval* (its own request, not checked by Deckhand):" : "*The agent asks* (its own words):";
  const body = q.items
    .map((it, i) => {
      const opts = it.options.map((o) => `• ${escapeMrkdwn(o.label)}${o.description ? ` — ${escapeMrkdwn(o.description)}` : ""}`).join("\n");
      return `${q.items.length > 1 ? `${i + 1}. ` : ""}> ${escapeMrkdwn(it.question).replace(/\n/g, "\n> ")}${opts && (q.kind === "question" && (!one || it.options.length > BUTTONS_MAX)) ? `\n${opts}` : ""}`;
    })
    .join("\n");
  const blocks: Block[] = [{ type: "section", text: { type: "mrkdwn", text: `${heading}\n${body}`.slice(0, 2900) } }];
  if (one && one.options.length) {
    blocks.push({
      type: "actions",
      block_id: `deckhand_q_${q.id}`.slice(0, 255),
      elements: one.options.slice(0, BUTTONS_MAX).map((o, i) => ({
        type: "button",
        action_id: `${ANSWER_ACTION}_${i}`,
        text: plain(o.label, 75),
        value: encodeAnswer({ r: runId, q: q.id, a: o.label }),
        ...(q.kind === "permission" ? { style: o.label === "Approve" ? "primary" : "danger" } : {}),
      })),
    });
  }
  const how =
    q.kind === "permission"
      ? "Or reply in this thread with approve or reject."
      : one?.custom !== false
        ? q.items.length > 1
          ? "Reply in this thread with one answer per line."
          : "Or reply in this thread with your own answer."
        : "";
  if (how) blocks.push({ type: "context", elements: [{ type: "mrkdwn", text: how }] });
  const first = q.items[0]?.question ?? "";
  // The fallback text (notifications) is mrkdwn too: the agent's words escaped there as well.
  return { text: `${q.kind === "permission" ? "Approval needed" : "The agent asks"}: ${escapeMrkdwn(first.slice(0, 300))}`, blocks };
}

/** The question's message once settled: the question, and how it was answered; no buttons any more. */
export function settledContent(s: SettledQuestion): { text: string; blocks: Block[] } {
  const line = `${s.how}${s.answer ? `: ${s.answer}` : ""}`;
  return {
    text: escapeMrkdwn(`${s.question.slice(0, 300)} — ${line}`),
    blocks: [
      { type: "section", text: { type: "mrkdwn", text: `> ${escapeMrkdwn(s.question).replace(/\n/g, "\n> ")}`.slice(0, 2900) } },
      { type: "context", elements: [{ type: "mrkdwn", text: `✅ ${escapeMrkdwn(line).slice(0, 2000)}` }] },
    ],
  };
}
