/**
 * A person's answer to the agent's question or approval ask, from any surface (API, run page, Slack, Linear, CLI),
 * checked by the same rules (events/questions.ts) and queued as the run's next input; the relay hands it to
 * OpenCode. Questions nobody answers are given up after QUESTION_TIMEOUT_SECONDS (`QuestionTimer`), so a run never
 * hangs on a person.
 */
import { readDigest } from "../events/digest-store.ts";
import { type AnswerInput, checkAnswer, overdueQuestions, type PendingQuestion, type RelayAnswer, timeoutAnswer } from "../events/questions.ts";
import { type Logger, runLog } from "../log/logger.ts";
import type { RunStore } from "./run-store.ts";
import { RunInputError } from "./run-service.ts";

export interface Answered {
  question: PendingQuestion;
  /** "Approved", "Rejected", or the chosen labels / words. */
  summary: string;
}

function answeredIds(inputs: { kind: string; text: string | null }[]): Set<string> {
  const ids = new Set<string>();
  for (const i of inputs) {
    if (i.kind !== "answer") continue;
    try {
      const a = JSON.parse(i.text ?? "") as Partial<RelayAnswer>;
      if (typeof a.requestId === "string") ids.add(a.requestId);
    } catch {
      /* not ours to read */
    }
  }
  return ids;
}

/** Who answered a question, and where (an input's author and source: "slack", "web", "cli", "timeout", ...). */
export interface AnswerSource {
  questionId: string;
  author: string | null;
  source: string;
}

/** The answers queued for a run's questions, oldest first (surfaces say who settled a question they showed). */
export async function answerSources(store: RunStore, runId: string): Promise<AnswerSource[]> {
  const out: AnswerSource[] = [];
  for (const i of await store.inputs(runId, "answer")) {
    const [id] = answeredIds([i]);
    if (id) out.push({ questionId: id, author: i.author, source: i.source });
  }
  return out;
}

/** The questions of a run still waiting for a person (asked, and no answer queued yet). */
export async function openQuestions(store: RunStore, runId: string): Promise<PendingQuestion[]> {
  const d = await readDigest(store.db, runId);
  if (!d.questions.length) return [];
  const done = answeredIds(await store.inputs(runId, "answer"));
  return d.questions.filter((q) => !done.has(q.id));
}

/** Checks and queues an answer. 404: no such run; 409: not waiting for this answer; 400: not a valid answer. */
export async function answerQuestion(
  store: RunStore,
  runId: string,
  questionId: string | null,
  input: AnswerInput,
  by: { author?: string | null; source: string },
): Promise<Answered> {
  const run = await store.get(runId);
  if (!run) throw new RunInputError(`run ${runId} not found`, "not_found");
  if (run.status !== "running") throw new RunInputError(`run ${runId} is ${run.status}: it is not waiting for an answer`, "conflict");
  const open = await openQuestions(store, runId);
  // No id: the oldest open question (a reply in a thread answers what was asked there).
  const q = questionId ? open.find((x) => x.id === questionId) : open[0];
  if (!q) throw new RunInputError(questionId ? `question ${questionId} is not waiting for an answer (answered already, or given up)` : `run ${runId} has no question waiting for an answer`, "conflict");
  const check = checkAnswer(q, input);
  if (!check.ok) throw new RunInputError(check.message, "invalid");
  await store.addInput(runId, { kind: "answer", text: JSON.stringify(check.answer), author: by.author ?? null, source: by.source });
  return { question: q, summary: check.summary };
}

/** Gives up on questions nobody answered in time: the agent is told to use its judgement. One per tick per run. */
export class QuestionTimer {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly deps: { store: RunStore; timeoutMs: number; log: Logger; everyMs?: number },
  ) {}

  start(): void {
    const every = this.deps.everyMs ?? Math.min(15_000, Math.max(1_000, Math.floor(this.deps.timeoutMs / 4)));
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = this.tick()
        .then(() => {})
        .catch((e) => this.deps.log.warn({ err: (e as Error).message }, "question timeouts failed"))
        .finally(() => (this.running = null));
    }, every);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  async tick(now = new Date()): Promise<number> {
    let given = 0;
    for (const run of await this.deps.store.list({ status: "running", limit: 500 })) {
      const open = await openQuestions(this.deps.store, run.id);
      for (const q of overdueQuestions(open, now, this.deps.timeoutMs)) {
        await this.deps.store.addInput(run.id, { kind: "answer", text: JSON.stringify(timeoutAnswer(q)), author: "deckhand", source: "timeout" });
        runLog(this.deps.log, run.id).info({ questionId: q.id, kind: q.kind }, "question not answered in time: the agent goes on without it");
        given++;
      }
    }
    return given;
  }
}
