/**
 * Starting, steering and stopping runs: the one entry point every trigger source uses (CLI/API, Slack, Linear,
 * the web page), so a reply in Slack and a follow-up from the API behave the same.
 */
import type { Run } from "../db/schema.ts";
import { checkModel, parseDirectives } from "../gateway/directives.ts";
import type { Logger } from "../log/logger.ts";
import { UnknownRepoError, type RepoRegistry } from "./repos.ts";
import type { CreateRunInput, RunStore } from "./run-store.ts";
import { isTerminal } from "./model.ts";
import { RUN_ID, withSpan } from "../ops/tracing.ts";

/** What is wrong with a request to start, steer or stop a run (mapped to HTTP in server/http-errors.ts). */
export type RunInputProblem = "invalid" | "too_large" | "not_found" | "conflict";

export class RunInputError extends Error {
  constructor(
    message: string,
    public readonly problem: RunInputProblem = "invalid",
  ) {
    super(message);
    this.name = "RunInputError";
  }
}

export const MAX_PROMPT_CHARS = 100_000;

export class RunService {
  constructor(
    readonly store: RunStore,
    readonly repos: RepoRegistry,
    private readonly publicUrl: string,
    private readonly defaultRepo: string | undefined,
    private readonly log: Logger,
    /** Models a run may choose (MODELS); the first is the default. */
    private readonly models: readonly string[] = [],
  ) {}

  /** `model=` (or an explicit model) checked against MODELS; null keeps the default. */
  private pickModel(model: string | null | undefined): string | null {
    if (!model) return null;
    const problem = this.models.length ? checkModel(model, this.models) : `Unknown model "${model}": no model is configured`;
    if (problem) throw new RunInputError(problem);
    return model === this.models[0] ? null : model;
  }

  runPageUrl(run: Pick<Run, "pageToken">): string {
    return `${this.publicUrl}/r/${run.pageToken}`;
  }

  /** The run page that needs a signed-in session: the link for places outside our control (pull requests). */
  signedInRunUrl(run: Pick<Run, "id">): string {
    return `${this.publicUrl}/runs/${run.id}`;
  }

  /** Pick the repo: explicit, else the default; unknown names are refused with the allowed list. */
  resolveRepo(repo: string | undefined | null): string {
    const name = repo?.trim() || this.defaultRepo;
    if (!name) throw new RunInputError(`No repo given and no DEFAULT_REPO set. Allowed: ${this.repos.names().join(", ") || "none (set REPOS)"}`);
    if (!this.repos.has(name)) throw new UnknownRepoError(name, this.repos.names());
    return name;
  }

  async start(input: Omit<CreateRunInput, "repo"> & { repo?: string | null }): Promise<Run> {
    const d = parseDirectives(input.prompt ?? "");
    if (d.problems.length) throw new RunInputError(d.problems.join("; "));
    const prompt = d.text;
    if (!prompt) throw new RunInputError("prompt is required");
    if (prompt.length > MAX_PROMPT_CHARS) throw new RunInputError(`prompt is longer than ${MAX_PROMPT_CHARS} characters`, "too_large");
    const repo = this.resolveRepo(input.repo);
    if (input.ref && !/^[\w./-]+$/.test(input.ref)) throw new RunInputError(`ref "${input.ref}" is not a valid branch or tag name`);
    const model = this.pickModel(input.model ?? d.model);
    const run = await withSpan("run.create", { "deckhand.source": input.source, "deckhand.repo": repo }, async (span) => {
      const r = await this.store.create({ ...input, prompt, repo, model, budgetExtraUsd: (input.budgetExtraUsd ?? 0) + (d.budgetUsd ?? 0) });
      span.setAttribute(RUN_ID, r.id);
      return r;
    });
    this.log.info({ runId: run.id, repo, source: run.source, model: model ?? "default" }, "run created");
    return run;
  }

  /** A follow-up prompt: steers a working run, or continues an idle one on the same branch. */
  async followUp(runId: string, input: { text: string; author?: string | null; source: string }): Promise<Run> {
    if (!input.text?.trim()) throw new RunInputError("text is required");
    const d = parseDirectives(input.text);
    if (d.problems.length) throw new RunInputError(d.problems.join("; "));
    // A follow-up that only raises the budget or changes the model continues the work.
    const text = d.text || "Continue.";
    const run = await this.store.get(runId);
    if (!run) throw new RunInputError(`run ${runId} not found`, "not_found");
    if (isTerminal(run.status)) throw new RunInputError(`run ${runId} is ${run.status}; start a new run`, "conflict");
    if (d.model !== undefined || d.budgetUsd !== undefined) {
      const model = d.model !== undefined ? this.pickModel(d.model) : undefined;
      if (model !== undefined) await this.store.setModel(runId, model);
      if (d.budgetUsd !== undefined) await this.store.raiseBudget(runId, d.budgetUsd);
      this.log.info({ runId, model, budgetRaiseUsd: d.budgetUsd }, "run model or budget changed by a follow-up");
    }
    await this.store.addInput(runId, { kind: "prompt", text, author: input.author, source: input.source });
    this.log.info({ runId, source: input.source }, "follow-up queued");
    return (await this.store.get(runId))!;
  }

  /** Stop: cancels a working run (or closes an idle one) and releases its sandbox. */
  async stop(runId: string, by: { author?: string | null; source: string }): Promise<Run> {
    const run = await this.store.get(runId);
    if (!run) throw new RunInputError(`run ${runId} not found`, "not_found");
    if (isTerminal(run.status)) return run;
    await this.store.addInput(runId, { kind: "stop", author: by.author, source: by.source });
    const reason = `Stopped by ${by.author ?? "a user"} (${by.source})`;
    const done = await this.store.transition(runId, { type: "cancel", reason });
    this.log.info({ runId, source: by.source }, "run stopped");
    return done ?? (await this.store.get(runId))!;
  }
}
