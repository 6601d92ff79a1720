/**
 * The agent's questions in Linear. In an agent session: an `elicitation` activity with Linear's `select` signal (the
 * options to pick from; Approve / Reject for an approval), and the person's pick or own words, coming back as a
 * `prompted` activity, read as an answer. On a classic run (comments, no session): a reply in the run's comment
 * thread that lists the options, and the next reply in the thread answers it. Once a question is settled somewhere
 * else (the run page, Slack, the CLI, the timeout), a short note says so: Linear cannot edit an agent activity
 * (@linear/sdk has no update mutation for one). Pure.
 */
import type { PendingQuestion, SettledQuestion } from "../../events/questions.ts";
import { NO_ANSWER } from "../../events/questions.ts";
import { clip } from "../../events/safe.ts";
import type { AnswerSource } from "../../runs/answers.ts";
import { type ForeignPrompt, sourceName } from "../../notify/notifier.ts";
import { neutralizeAgentMarkdown, quoteAgent } from "../agent-words.ts";
import type { ActivityContent, SelectSignal } from "./messages.ts";

/** Linear shows the options as a list; more than this many is a wall, not a choice. */
const OPTIONS_MAX = 25;

/** The `select` signal offering `labels` (the value is the label: what comes back is what the person saw). */
export function selectSignal(labels: string[]): SelectSignal {
  const options = [...new Set(labels.map((l) => l.trim()).filter(Boolean))].slice(0, OPTIONS_MAX).map((l) => ({ label: l, value: l }));
  return { signal: "select", signalMetadata: { options } };
}

const APPROVAL_WHAT = (q: PendingQuestion) => quoteAgent(q.action ?? "a tool", "request for approval");

/** The agent's question quoted and made inert, each part with its options listed. */
function quotedQuestion(q: PendingQuestion): string {
  const parts = q.items.map((it, i) => {
    const opts = it.options.map((o) => `- ${o.label}${o.description ? ` — ${o.description}` : ""}`).join("\n");
    return `${q.items.length > 1 ? `${i + 1}. ` : ""}${it.question}${opts ? `\n${opts}` : ""}`;
  });
  return quoteAgent(parts.join("\n\n"), "question");
}

/** The elicitation for a pending question: the agent's words quoted and made inert, and the options to pick. */
export function questionElicitation(q: PendingQuestion): { content: ActivityContent & { type: "elicitation" }; select: SelectSignal | null } {
  if (q.kind === "permission") {
    const body = `${APPROVAL_WHAT(q)}\n\nPick **Approve** to let it run this once, or **Reject** to refuse (the agent is told).`;
    return { content: { type: "elicitation", body }, select: selectSignal(["Approve", "Reject"]) };
  }
  const one = q.items.length === 1 ? q.items[0]! : null;
  const how = one
    ? one.options.length
      ? one.custom
        ? "Pick an option, or reply with your own answer."
        : "Pick one of the options."
      : "Reply with your answer."
    : "Reply with one answer per line, in this order.";
  return { content: { type: "elicitation", body: `${quotedQuestion(q)}\n\n${how}` }, select: one && one.options.length ? selectSignal(one.options.map((o) => o.label)) : null };
}

/** A classic run's question: a comment in the run's thread saying how to answer there. */
export function questionComment(q: PendingQuestion): string {
  if (q.kind === "permission") return `${APPROVAL_WHAT(q)}\n\nReply in this thread with **approve** to let it run this once, or **reject** to refuse (the agent is told).`;
  const one = q.items.length === 1 ? q.items[0]! : null;
  const how = one
    ? one.options.length
      ? one.custom
        ? `Reply in this thread with one of the options (for example \`${one.options[0]!.label.replace(/`/g, "'")}\`) or in your own words.`
        : "Reply in this thread with one of the options."
      : "Reply in this thread with your answer."
    : "Reply in this thread with one answer per line, in this order.";
  return `${quotedQuestion(q)}\n\n${how}`;
}

/** A person's name or a surface, as one short inert phrase. */
const inert = (s: string, n: number) => neutralizeAgentMarkdown(s.replace(/\s+/g, " ").trim().slice(0, n));

/**
 * The note that a question shown in Linear was settled: by whom and where, and how. Null when Linear already shows
 * it (answered from Linear itself: the person's own reply is there).
 */
export function settledNote(sq: SettledQuestion, by: AnswerSource | undefined): string | null {
  if (by?.source === "linear") return null;
  const asked = inert(sq.question, 200);
  const what = asked ? `\n\n(The agent asked: ${asked})` : "";
  if (by?.source === "timeout" || (sq.how === "Answered" && sq.answer.startsWith(NO_ANSWER.slice(0, 30)))) return `Nobody answered in time; the agent goes on with its best judgement.${what}`;
  if (sq.how === "Dismissed") return `The agent stopped waiting for an answer.${what}`;
  const where = by ? inert(sourceName(by.source), 40) : "";
  const who = by?.author ? inert(by.author, 80) : "";
  const credit = who ? ` by ${who}${where ? ` on ${where}` : ""}` : where ? ` on ${where}` : "";
  const answer = sq.how === "Answered" && sq.answer ? `: ${inert(sq.answer, 300)}` : ".";
  return `${sq.how}${credit}${answer}${what}`;
}

/** How much of a follow-up sent elsewhere the session shows. */
const FOLLOW_UP_NOTE_MAX = 500;

/** The note that the run was given a follow-up elsewhere (the run page, the API, the CLI, Slack). Pure. */
export function followUpNote(p: Pick<ForeignPrompt, "author" | "source" | "text">): string {
  const who = p.author ? inert(p.author, 80) : "someone";
  const text = clip(p.text, FOLLOW_UP_NOTE_MAX);
  const quoted = neutralizeAgentMarkdown(text.trim()).split("\n").map((l) => `> ${l}`).join("\n");
  return `Follow-up from ${who} on ${inert(sourceName(p.source), 40)}:\n\n${quoted}`;
}
