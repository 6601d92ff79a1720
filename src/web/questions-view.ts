/**
 * The agent's pending questions and approval asks on the run page: the question (the agent's words, escaped), a
 * button per option (Approve / Reject for an approval) and, when the question allows it, a field for an answer of
 * one's own. Signed in only: each form posts to `/runs/<id>/answers` with the page's CSRF token; the read-only link
 * shows the question and says to sign in. Pure; the live stream re-sends it as the `questions` region.
 */
import type { PendingQuestion, QuestionItem } from "../events/questions.ts";
import { esc } from "./html.ts";

interface WithQuestions {
  id: string;
  questions?: readonly PendingQuestion[];
}

const status = `<span class="form-status" role="status" aria-live="polite"></span>`;

function options(it: QuestionItem): string {
  const described = it.options.filter((o) => o.description);
  return described.length ? `<ul class="muted small options">${described.map((o) => `<li><b>${esc(o.label)}</b>: ${esc(o.description)}</li>`).join("")}</ul>` : "";
}

function answerForms(runId: string, q: PendingQuestion, csrf: string): string {
  const action = `/runs/${esc(runId)}/answers`;
  const hidden = `<input type="hidden" name="_csrf" value="${esc(csrf)}"><input type="hidden" name="questionId" value="${esc(q.id)}">`;
  const fid = `q-${esc(q.id)}`;
  if (q.items.length === 1) {
    const it = q.items[0]!;
    const buttons = it.options.length
      ? `<form method="post" action="${action}" class="answer choices" data-action>${hidden}<div class="row">${it.options
          .map((o) => `<button type="submit" name="choice" value="${esc(o.label)}"${q.kind === "permission" && o.label === "Reject" ? ' class="danger"' : ""}>${esc(o.label)}</button>`)
          .join(" ")} ${status}</div></form>`
      : "";
    // Its own form: Enter in the field sends the words, never the first option's button.
    const own = it.custom
      ? `<form method="post" action="${action}" class="answer own" data-action>${hidden}<label for="${fid}-own">${it.options.length ? "Or your own answer" : "Your answer"}</label><input type="text" id="${fid}-own" name="answer" maxlength="2000" required><div class="row"><button type="submit">Send answer</button> ${status}</div></form>`
      : "";
    return buttons + own;
  }
  // Several parts: one form, an option or one's own words per part.
  const parts = q.items
    .map((it, i) => {
      const radios = it.options.map((o, j) => `<label class="choice"><input type="radio" name="a${i}" value="${esc(o.label)}"${j === 0 && !it.custom ? " required" : ""}> ${esc(o.label)}</label>`).join("");
      const own = it.custom ? `<label for="${fid}-t${i}" class="small">${it.options.length ? "Or your own answer" : "Your answer"}</label><input type="text" id="${fid}-t${i}" name="t${i}" maxlength="2000">` : "";
      return `<fieldset><legend class="text">${esc(it.question)}</legend>${options(it)}${radios}${own}</fieldset>`;
    })
    .join("");
  return `<form method="post" action="${action}" class="answer parts" data-action>${hidden}<input type="hidden" name="parts" value="${q.items.length}">${parts}<div class="row"><button type="submit">Send answers</button> ${status}</div></form>`;
}

function one(runId: string, q: PendingQuestion, csrf: string | undefined): string {
  const hid = `q-${esc(q.id)}-h`;
  const heading =
    q.kind === "permission"
      ? `<h2 id="${hid}">The agent asks for approval <span class="muted small">(its own request, not checked by Deckhand)</span></h2><p>It wants to run <code>${esc(q.action ?? "a tool")}</code>.</p>`
      : `<h2 id="${hid}">The agent asks <span class="muted small">(its own words)</span></h2>${q.items.length === 1 ? `<div class="text">${esc(q.items[0]!.question)}</div>${options(q.items[0]!)}` : ""}`;
  const readOnly = q.items.length > 1 ? q.items.map((it) => `<div class="text">${esc(it.question)}</div>${options(it)}`).join("") : "";
  const body = csrf === undefined ? `${readOnly}<p class="muted">Sign in to answer.</p>` : answerForms(runId, q, csrf);
  return `<div class="question" id="q-${esc(q.id)}" role="group" aria-labelledby="${hid}">${heading}${body}</div>`;
}

export function renderQuestions(v: WithQuestions, csrf?: string): string {
  // A view written before questions existed has none.
  return (v.questions ?? []).map((q) => one(v.id, q, csrf)).join("\n");
}

/** A posted answer form, as checkAnswer reads it: a picked option, one's own words, or one answer per part. */
export function answerFromForm(body: Record<string, unknown>): { questionId: string | null; answer?: string; answers?: string[] } {
  const str = (k: string) => (typeof body[k] === "string" ? (body[k] as string).trim() : "");
  const questionId = str("questionId") || null;
  if (str("choice")) return { questionId, answer: str("choice") };
  const parts = Number.parseInt(str("parts"), 10);
  if (parts > 1 && parts <= 5) return { questionId, answers: Array.from({ length: parts }, (_, i) => str(`t${i}`) || str(`a${i}`)) };
  return { questionId, answer: str("answer") };
}
