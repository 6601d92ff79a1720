/**
 * The agent's questions and permission asks, as people see them. OpenCode's `question.asked` (the `question` tool)
 * and `permission.asked` (a tool call that PERMISSIONS routes to a person) become pending questions in the run's
 * digest; `question.replied`/`question.rejected`/`permission.replied` settle them. Pure and bounded: every field was
 * written by the agent (read with safe.ts), strings are cut, at most QUESTIONS_MAX are pending.
 *
 * An answer is checked here too (`checkAnswer`), so the API, the run page, Slack, Linear and the CLI accept exactly
 * the same answers, and the relay gets OpenCode's own shapes (`answers: string[][]`, `reply: once|reject`).
 */
import { obj, own, text } from "./safe.ts";

export const QUESTIONS_MAX = 20;
const PER_REQUEST_MAX = 5;
const OPTIONS_MAX = 10;

export interface QuestionOption {
  label: string;
  description: string;
}

export interface QuestionItem {
  question: string;
  header: string;
  options: QuestionOption[];
  multiple: boolean;
  /** May the person type an answer of their own? (OpenCode's default: yes.) */
  custom: boolean;
}

export interface PendingQuestion {
  /** OpenCode's request id (`que_…`/`per_…`). */
  id: string;
  kind: "question" | "permission";
  items: QuestionItem[];
  /** For a permission: what the agent wants to do ("bash: git push origin main"). */
  action?: string;
  askedAt: string;
  seq: number;
}

const cut = (s: unknown, n: number) => {
  const t = text(s).trim();
  return t.length > n ? `${t.slice(0, n - 1)}…` : t;
};

function items(x: unknown): QuestionItem[] {
  if (!Array.isArray(x)) return [];
  const out: QuestionItem[] = [];
  for (const q of x.slice(0, PER_REQUEST_MAX)) {
    const question = cut(own(q, "question"), 1000);
    if (!question) continue;
    const opts = Array.isArray(own(q, "options")) ? (own(q, "options") as unknown[]) : [];
    const options: QuestionOption[] = [];
    const seen = new Set<string>();
    for (const o of opts.slice(0, OPTIONS_MAX)) {
      const label = cut(own(o, "label"), 75);
      if (!label || seen.has(label)) continue;
      seen.add(label);
      options.push({ label, description: cut(own(o, "description"), 200) });
    }
    out.push({ question, header: cut(own(q, "header"), 30), options, multiple: own(q, "multiple") === true, custom: own(q, "custom") !== false });
  }
  return out;
}

/** The pending question an `asked` event describes, or null when it is not one we can show. */
export function questionFromEvent(type: string, data: unknown, seq: number, at: string): PendingQuestion | null {
  const d = obj(data);
  const id = cut(own(d, "id"), 120);
  if (!id) return null;
  if (type === "question.asked") {
    const qs = items(own(d, "questions"));
    return qs.length ? { id, kind: "question", items: qs, askedAt: at, seq } : null;
  }
  if (type === "permission.asked") {
    const permission = cut(own(d, "permission"), 60) || "a tool";
    const patterns = Array.isArray(own(d, "patterns")) ? (own(d, "patterns") as unknown[]).map((p) => cut(p, 200)).filter(Boolean).slice(0, 5) : [];
    const action = `${permission}${patterns.length ? `: ${patterns.join(", ")}` : ""}`;
    const item: QuestionItem = {
      question: `The agent asks to run ${action}. Allow it?`,
      header: "Approval",
      options: [
        { label: "Approve", description: "Allow this once" },
        { label: "Reject", description: "Refuse; the agent is told" },
      ],
      multiple: false,
      custom: false,
    };
    return { id, kind: "permission", items: [item], action, askedAt: at, seq };
  }
  return null;
}

/** A question that was answered (or given up, dismissed): kept briefly so surfaces can say how it ended. */
export interface SettledQuestion {
  id: string;
  question: string;
  how: "Answered" | "Approved" | "Rejected" | "Dismissed";
  answer: string;
}

/** How an event settled `q`, for people. */
export function settle(q: PendingQuestion, type: string, data: unknown): SettledQuestion {
  const d = obj(data);
  const answers = Array.isArray(d.answers) ? d.answers.map((a) => (Array.isArray(a) ? a.map((x) => text(x)).join(", ") : text(a))).join("; ") : "";
  const how = type === "question.rejected" ? "Dismissed" : type === "permission.replied" ? (text(d.reply) === "reject" ? "Rejected" : "Approved") : "Answered";
  return { id: q.id, question: q.kind === "permission" ? `Approval: ${q.action ?? ""}` : (q.items[0]?.question ?? ""), how, answer: how === "Answered" ? cut(answers, 300) : "" };
}

/** The request id an event settles (replied, rejected), if it is one. */
export function settledId(type: string, data: unknown): string | null {
  if (type !== "question.replied" && type !== "question.rejected" && type !== "permission.replied") return null;
  return cut(own(data, "requestID"), 120) || null;
}

/** Adds a question to the pending list (replacing one with the same id), keeping the newest QUESTIONS_MAX. */
export function withQuestion(list: readonly PendingQuestion[], q: PendingQuestion): PendingQuestion[] {
  const out = list.filter((x) => x.id !== q.id);
  out.push(q);
  return out.slice(-QUESTIONS_MAX);
}

/* ------------------------------------------------------------------ answers */

/** What a person sent: option labels or their own words, per item (one item: a plain string is enough). */
export type AnswerInput = { answers?: unknown; answer?: unknown; approve?: unknown };

/** What the relay hands OpenCode. */
export type RelayAnswer = { kind: "question"; requestId: string; answers: string[][] } | { kind: "permission"; requestId: string; reply: "once" | "reject" };

export type AnswerCheck = { ok: true; answer: RelayAnswer; summary: string } | { ok: false; message: string };

const MAX_ANSWER = 2000;

/** Checks a person's answer against the question; the same rules on every surface. */
export function checkAnswer(q: PendingQuestion, input: AnswerInput): AnswerCheck {
  if (q.kind === "permission") {
    let approve: boolean | null = typeof input.approve === "boolean" ? input.approve : null;
    const word = text(input.answer).trim().toLowerCase();
    if (approve === null && ["approve", "yes", "allow", "ok"].includes(word)) approve = true;
    if (approve === null && ["reject", "no", "deny", "refuse"].includes(word)) approve = false;
    if (approve === null) return { ok: false, message: "answer an approval with approve=true or false (or the words Approve / Reject)" };
    return { ok: true, answer: { kind: "permission", requestId: q.id, reply: approve ? "once" : "reject" }, summary: approve ? "Approved" : "Rejected" };
  }
  let raw: unknown[];
  if (Array.isArray(input.answers)) raw = input.answers;
  // Written words (a thread reply, a Linear prompt, a form field): one line per part when there are several.
  else if (typeof input.answer === "string") raw = q.items.length > 1 ? input.answer.split(/\r?\n/).map((l) => l.trim()).filter(Boolean) : [input.answer];
  else return { ok: false, message: "send `answer` (text) or `answers` (one list of labels per question)" };
  if (raw.length !== q.items.length) return { ok: false, message: `this question has ${q.items.length} part(s); got ${raw.length} answer(s)` };
  const answers: string[][] = [];
  for (let i = 0; i < q.items.length; i++) {
    const item = q.items[i]!;
    // An option named in another case is that option (its exact label); anything else stays the person's words.
    const given = (Array.isArray(raw[i]) ? (raw[i] as unknown[]) : [raw[i]])
      .map((a) => text(a).trim())
      .filter(Boolean)
      .map((g) => item.options.find((o) => o.label.toLowerCase() === g.toLowerCase())?.label ?? g);
    if (!given.length) return { ok: false, message: `no answer for "${item.question.slice(0, 80)}"` };
    if (given.length > 1 && !item.multiple) return { ok: false, message: `"${item.question.slice(0, 80)}" takes one answer` };
    for (const g of given) {
      if (g.length > MAX_ANSWER) return { ok: false, message: `an answer may be at most ${MAX_ANSWER} characters` };
      const known = item.options.some((o) => o.label === g);
      if (!known && !item.custom) return { ok: false, message: `choose one of: ${item.options.map((o) => o.label).join(", ")}` };
    }
    answers.push(given);
  }
  return { ok: true, answer: { kind: "question", requestId: q.id, answers }, summary: answers.map((a) => a.join(", ")).join("; ") };
}

/** The text given to the agent when nobody answered in time. */
export const NO_ANSWER = "No answer: nobody replied in time. Use your best judgement and say what you assumed.";

/** The answer that ends a question nobody answered: the agent is told to go on (a run never hangs on a person). */
export function timeoutAnswer(q: PendingQuestion): RelayAnswer {
  if (q.kind === "permission") return { kind: "permission", requestId: q.id, reply: "reject" };
  return { kind: "question", requestId: q.id, answers: q.items.map(() => [NO_ANSWER]) };
}

/** Questions asked more than `timeoutMs` ago (pure). */
export function overdueQuestions(list: readonly PendingQuestion[], now: Date, timeoutMs: number): PendingQuestion[] {
  return list.filter((q) => now.getTime() - Date.parse(q.askedAt) >= timeoutMs);
}

/** One line for a status or a timeline: the first question's text. */
export function questionLine(q: PendingQuestion): string {
  return q.kind === "permission" ? `Waiting for approval: ${q.action}` : `Waiting for an answer: ${q.items[0]?.question ?? ""}`;
}
