/**
 * The agent's questions in the terminal: `deckhand run` on a TTY prints a pending question with numbered options
 * and reads the answer from stdin; elsewhere it prints how to answer with `deckhand answer`. Formatting and reading
 * the typed answer are pure; `askOnTty` is the small bit of I/O.
 */
import readline from "node:readline";
import type { PendingQuestion } from "../events/questions.ts";

/** What `POST /api/runs/:id/answers` takes. */
export interface AnswerBody {
  questionId: string;
  answer?: string;
  answers?: string[];
}

/** The question, numbered options, in plain text (the agent's words, control characters removed). */
export function questionText(q: PendingQuestion): string {
  const clean = (s: string) => s.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, "");
  if (q.kind === "permission") return `The agent asks for approval to run: ${clean(q.action ?? "a tool")}\n  1) Approve\n  2) Reject`;
  return q.items
    .map((it, i) => {
      const opts = it.options.map((o, j) => `  ${j + 1}) ${clean(o.label)}${o.description ? ` — ${clean(o.description)}` : ""}`).join("\n");
      return `${q.items.length > 1 ? `(${i + 1}/${q.items.length}) ` : ""}The agent asks: ${clean(it.question)}${opts ? `\n${opts}` : ""}`;
    })
    .join("\n");
}

/** What to type (shown on a TTY). */
export function promptHint(q: PendingQuestion, part = 0): string {
  if (q.kind === "permission") return "Approve? [1 = approve, 2 = reject]: ";
  const it = q.items[part]!;
  if (!it.options.length) return "Your answer: ";
  return it.custom ? `Answer [1-${it.options.length}, or type your own]: ` : `Answer [1-${it.options.length}]: `;
}

/** How to answer from another shell (not a TTY). */
export function answerHint(runId: string, q: PendingQuestion): string {
  if (q.kind === "permission") return `Answer with: deckhand answer ${runId} --question ${q.id} --approve   (or --reject)`;
  const example = q.items[0]?.options[0]?.label ?? "your answer";
  return `Answer with: deckhand answer ${runId} --question ${q.id} ${JSON.stringify(example)}`;
}

/** A typed line as the answer to part `part`: an option's number becomes its label. */
export function typedAnswer(q: PendingQuestion, line: string, part = 0): string {
  const t = line.trim();
  const labels = q.kind === "permission" ? ["Approve", "Reject"] : (q.items[part]?.options.map((o) => o.label) ?? []);
  const n = /^\d{1,2}$/.test(t) ? Number(t) : 0;
  return n >= 1 && n <= labels.length ? labels[n - 1]! : t;
}

/** Asks on the terminal, one line per part; null when input ended (Ctrl-D). */
export async function askOnTty(q: PendingQuestion, input: NodeJS.ReadableStream, out: NodeJS.WritableStream): Promise<AnswerBody | null> {
  const rl = readline.createInterface({ input, output: out, terminal: false });
  const lines = rl[Symbol.asyncIterator]();
  try {
    out.write(`${questionText(q)}\n`);
    const parts = q.kind === "permission" ? 1 : q.items.length;
    const answers: string[] = [];
    for (let i = 0; i < parts; i++) {
      out.write(promptHint(q, i));
      const next = await lines.next();
      if (next.done) return null;
      answers.push(typedAnswer(q, String(next.value), i));
    }
    return parts > 1 ? { questionId: q.id, answers } : { questionId: q.id, answer: answers[0]! };
  } finally {
    rl.close();
  }
}
