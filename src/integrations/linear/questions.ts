/**
 * The agent's questions in a Linear agent session: an `elicitation` activity with Linear's `select` signal (the
 * options to pick from; Approve / Reject for an approval), and the person's pick or own words, coming back as a
 * `prompted` activity, read as an answer. Pure.
 */
import type { PendingQuestion } from "../../events/questions.ts";
import { quoteAgent } from "../agent-words.ts";
import type { ActivityContent, SelectSignal } from "./messages.ts";

/** Linear shows the options as a list; more than this many is a wall, not a choice. */
const OPTIONS_MAX = 25;

/** The `select` signal offering `labels` (the value is the label: what comes back is what the person saw). */
export function selectSignal(labels: string[]): SelectSignal {
  const options = [...new Set(labels.map((l) => l.trim()).filter(Boolean))].slice(0, OPTIONS_MAX).map((l) => ({ label: l, value: l }));
  return { signal: "select", signalMetadata: { options } };
}

/** The elicitation for a pending question: the agent's words quoted and made inert, and the options to pick. */
export function questionElicitation(q: PendingQuestion): { content: ActivityContent & { type: "elicitation" }; select: SelectSignal | null } {
  if (q.kind === "permission") {
    const body = `${quoteAgent(q.action ?? "a tool", "request for approval")}\n\nPick **Approve** to let it run this once, or **Reject** to refuse (the agent is told).`;
    return { content: { type: "elicitation", body }, select: selectSignal(["Approve", "Reject"]) };
  }
  const one = q.items.length === 1 ? q.items[0]! : null;
  const parts = q.items.map((it, i) => {
    const opts = it.options.map((o) => `- ${o.label}${o.description ? ` — ${o.description}` : ""}`).join("\n");
    return `${q.items.length > 1 ? `${i + 1}. ` : ""}${it.question}${opts ? `\n${opts}` : ""}`;
  });
  const how = one
    ? one.options.length
      ? one.custom
        ? "Pick an option, or reply with your own answer."
        : "Pick one of the options."
      : "Reply with your answer."
    : "Reply with one answer per line, in this order.";
  const body = `${quoteAgent(parts.join("\n\n"), "question")}\n\n${how}`;
  return { content: { type: "elicitation", body }, select: one && one.options.length ? selectSignal(one.options.map((o) => o.label)) : null };
}
