/**
 * The Slack notifier: a run started from Slack reports in its thread.
 *
 * `plan` (pure) decides, from the run view, what the thread is owed: one status message per working period
 * (posted once, then edited in place), the final message when the run goes idle, a failure / cancel message,
 * and the reactions on the message that started the run (👀 while working, ✅ / ❌ at the end).
 *
 * `send` does the Slack calls. Posts are made at most once even across crashes: each carries its dedupe key in
 * the message `metadata`, an intent marker is saved before posting, and a retried post first looks in the
 * thread for a message with its key. Rate limits and Slack outages become `RetryLater`.
 */
import crypto from "node:crypto";
import { webApi } from "@slack/bolt";
import type { Notification, Run } from "../../db/schema.ts";
import type { OutboxMessage, Plan, PlanInput, SendContext, SurfaceNotifier } from "../../notify/notifier.ts";
import { RetryLater, sourceName } from "../../notify/notifier.ts";
import { endContent, finalContent, followUpEcho, type SlackContent, statusContent } from "./messages.ts";
import { questionContent, settledContent } from "./questions.ts";
import { isActive, type SlackSourceRef } from "../../runs/model.ts";

export const SURFACE = "slack";
export const METADATA_EVENT = "deckhand_message";

/** Where a Slack run lives: stored as the run's `sourceRef`. */
export type SlackRef = SlackSourceRef & { messageTs: string };

export function slackRef(run: Pick<Run, "source" | "sourceRef">): SlackRef | null {
  const r = run.sourceRef as Partial<SlackRef>;
  if (run.source !== "slack" || typeof r?.channel !== "string" || typeof r.threadTs !== "string") return null;
  return { channel: r.channel, threadTs: r.threadTs, messageTs: typeof r.messageTs === "string" ? r.messageTs : r.threadTs, team: r.team, user: r.user };
}

/** The ordering key of everything said in one thread (a run's reports and replies without a run, say.ts). */
export const threadOrderingKey = (channel: string, threadTs: string) => `slack:${channel}:${threadTs}`;
/** The ordering key of the reactions on one message (added and removed in order, apart from the thread's posts). */
export const reactOrderingKey = (channel: string, ts: string) => `slack-react:${channel}:${ts}`;

const REACTION_WORKING = "eyes";
const REACTION_DONE = "white_check_mark";
const REACTION_FAILED = "x";

const hashOf = (c: SlackContent, extra = "") =>
  crypto
    .createHash("sha256")
    .update(JSON.stringify(c) + extra)
    .digest("hex")
    .slice(0, 16);

/**
 * What the thread is owed for this run state. Pure.
 *
 * A "turn" is one working period; its number is the run's `deliveredInputSeq` when it began (0 for the first,
 * the delivered input seq for a continuation after idle), remembered in the surface state while it works.
 */
export function planSlack({ run, view, digest, state, foreignPrompts }: PlanInput): Plan {
  const ref = slackRef(run);
  if (!ref) return { messages: [] };
  const thread = threadOrderingKey(ref.channel, ref.threadTs);
  const reactOrder = reactOrderingKey(ref.channel, ref.messageTs);
  const base = `slack:${run.id}`;
  const messages: OutboxMessage[] = [];
  const next: Record<string, unknown> = {};
  const working = isActive(run.status);
  const turn = working ? run.deliveredInputSeq : typeof state.turn === "number" ? state.turn : null;
  if (working && state.turn !== turn) next.turn = turn;

  const where = { channel: ref.channel, threadTs: ref.threadTs };
  const content = statusContent(view);
  // Elapsed seconds are left out of the comparison; whole minutes are in, so a long quiet stretch still ticks.
  const hash = hashOf(statusContent(view, { elapsed: false }), `:${Math.floor(view.durationMs / 60_000)}`);
  const hashKey = `hash:${turn}`;

  // Steered from elsewhere (the run page, the API, the CLI): the thread shows what was asked, by whom, once.
  for (const p of foreignPrompts ?? []) {
    const text = followUpEcho(p.author ?? "someone", p.text, sourceName(p.source));
    messages.push({ dedupeKey: `${base}:input:${p.seq}`, orderingKey: thread, kind: "reply", payload: { ...where, text } });
  }

  if (working) {
    messages.push({ dedupeKey: `${base}:status:${turn}:post`, orderingKey: thread, kind: "status_post", payload: { ...where, turn, ...content } });
    messages.push({
      dedupeKey: `${base}:react:${turn}:working`,
      orderingKey: reactOrder,
      kind: "react",
      payload: { channel: ref.channel, ts: ref.messageTs, remove: [REACTION_DONE, REACTION_FAILED], add: [REACTION_WORKING] },
    });
  }
  if (turn !== null && run.status !== "closed") {
    if (state[hashKey] === undefined && working) next[hashKey] = hash; // the post carries this content
    else if (state[hashKey] !== hash) {
      next[hashKey] = hash;
      messages.push({
        dedupeKey: `${base}:status:${turn}:edit:${hash}:${run.lastEventSeq}`,
        orderingKey: thread,
        kind: "status_edit",
        coalesce: true,
        // While working, an edit is progress (dropped behind a pending final); the edit to the end state is not.
        ...(working ? { role: "progress" as const } : {}),
        payload: { ...where, turn, ...content },
      });
    }
  }
  // The agent's questions: one message each, with buttons; edited to say how it was settled.
  if (run.status === "running") {
    for (const q of view.questions) {
      messages.push({ dedupeKey: `${base}:question:${q.id}`, orderingKey: thread, kind: "question", payload: { ...where, questionId: q.id, ...questionContent(run.id, q) } });
    }
  }
  for (const sq of digest.settledQuestions ?? []) {
    const ts = state[`q:${sq.id}`];
    if (typeof ts !== "string" || state[`qdone:${sq.id}`]) continue;
    next[`qdone:${sq.id}`] = true;
    messages.push({ dedupeKey: `${base}:question:${sq.id}:settled`, orderingKey: thread, kind: "question_settled", payload: { ...where, ts, ...settledContent(sq) } });
  }
  if (run.status === "idle") {
    messages.push({ dedupeKey: `${base}:final:${run.deliveredInputSeq}`, orderingKey: thread, kind: "final", role: "final", payload: { ...where, ...finalContent(view) } });
    messages.push({
      dedupeKey: `${base}:react:${turn ?? "x"}:idle:${run.deliveredInputSeq}`,
      orderingKey: reactOrder,
      kind: "react",
      payload: { channel: ref.channel, ts: ref.messageTs, remove: [REACTION_WORKING], add: [REACTION_DONE] },
    });
  }
  if (run.status === "failed" || run.status === "cancelled") {
    messages.push({ dedupeKey: `${base}:end`, orderingKey: thread, kind: "end", role: "final", payload: { ...where, ...endContent(view) } });
    messages.push({
      dedupeKey: `${base}:react:end`,
      orderingKey: reactOrder,
      kind: "react",
      payload: { channel: ref.channel, ts: ref.messageTs, remove: [REACTION_WORKING, REACTION_DONE], add: [REACTION_FAILED] },
    });
  }
  return { messages, state: Object.keys(next).length ? next : undefined };
}

// ------------------------------------------------------------------------------------------------------------
// Sending
// ------------------------------------------------------------------------------------------------------------

const TEMPORARY = new Set(["ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout", "team_added_to_org"]);

/** A Web API failure → RetryLater (429, 5xx, network, Slack's temporary errors) or a permanent Error. */
export function classifySlackError(e: unknown, method: string): Error {
  const err = e as { code?: string; retryAfter?: number; statusCode?: number; headers?: Record<string, string>; data?: { error?: string }; message?: string };
  switch (err?.code) {
    case webApi.ErrorCode.RateLimitedError:
      return new RetryLater(`Slack rate limited ${method}`, Math.max(1, Number(err.retryAfter ?? 1)) * 1000);
    case webApi.ErrorCode.HTTPError: {
      const status = Number(err.statusCode);
      if (status === 429) return new RetryLater(`Slack rate limited ${method}`, Math.max(1, Number(err.headers?.["retry-after"] ?? 1)) * 1000);
      if (status >= 500 || status === 408) return new RetryLater(`Slack answered ${status} to ${method}`);
      return new Error(`Slack answered ${status} to ${method}`);
    }
    case webApi.ErrorCode.RequestError:
      return new RetryLater(`Slack did not answer ${method}: ${err.message ?? "request failed"}`);
    case webApi.ErrorCode.PlatformError: {
      const code = String(err.data?.error ?? "unknown_error");
      return TEMPORARY.has(code) ? new RetryLater(`Slack ${method}: ${code}`) : new SlackCallError(method, code);
    }
    default:
      return e instanceof Error ? e : new Error(String(e));
  }
}

export class SlackCallError extends Error {
  constructor(
    readonly method: string,
    readonly slackError: string,
  ) {
    super(`Slack ${method}: ${slackError}`);
    this.name = "SlackCallError";
  }
}

export interface SlackNotifierOptions {
  client: InstanceType<typeof webApi.WebClient>;
  /** Minimum time between two messages (posts or edits) in one thread. Default 1000 ms. */
  minIntervalMs?: number;
}

type Payload = { channel: string; threadTs: string; text: string; blocks?: unknown[]; turn?: number; ts?: string; add?: string[]; remove?: string[]; questionId?: string };

export class SlackNotifier implements SurfaceNotifier {
  readonly surface = SURFACE;
  readonly minIntervalMs: number;

  constructor(private readonly o: SlackNotifierOptions) {
    this.minIntervalMs = o.minIntervalMs ?? 1000;
  }

  wants(run: Run): boolean {
    return slackRef(run) !== null;
  }

  plan(input: PlanInput): Plan {
    return planSlack(input);
  }

  async send(message: Notification, ctx: SendContext): Promise<Record<string, unknown> | void> {
    const p = message.payload as Payload;
    switch (message.kind) {
      case "status_post": {
        const ts = await this.postOnce(message, ctx, p);
        if (message.runId) await ctx.setState(message.runId, { [`status:${p.turn}`]: ts });
        return { ts };
      }
      case "status_edit": {
        const state = message.runId ? await ctx.getState(message.runId) : {};
        const ts = state[`status:${p.turn}`];
        if (typeof ts !== "string") throw new Error(`the status message of turn ${p.turn} was never posted`);
        await this.withBlocksFallback("chat.update", (blocks) => this.o.client.chat.update({ channel: p.channel, ts, text: p.text, ...(blocks ? { blocks } : {}) } as never), p.blocks);
        return { ts };
      }
      case "final":
      case "end":
      case "reply":
        return { ts: await this.postOnce(message, ctx, p) };
      case "question": {
        const ts = await this.postOnce(message, ctx, p);
        if (message.runId) await ctx.setState(message.runId, { [`q:${p.questionId}`]: ts });
        return { ts };
      }
      case "question_settled":
        await this.withBlocksFallback("chat.update", (blocks) => this.o.client.chat.update({ channel: p.channel, ts: p.ts!, text: p.text, ...(blocks ? { blocks } : {}) } as never), p.blocks);
        return { ts: p.ts };
      case "react":
        await this.react(p);
        return {};
      default:
        throw new Error(`unknown Slack message kind ${message.kind}`);
    }
  }

  private async call<T>(method: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw classifySlackError(e, method);
    }
  }

  /** Call with blocks; if Slack refuses the blocks, send the text alone (never lose a message over layout). */
  private async withBlocksFallback<T>(method: string, fn: (blocks: unknown[] | undefined) => Promise<T>, blocks: unknown[] | undefined): Promise<T> {
    try {
      return await this.call(method, () => fn(blocks));
    } catch (e) {
      if (e instanceof SlackCallError && /^invalid_blocks/.test(e.slackError) && blocks) return this.call(method, () => fn(undefined));
      throw e;
    }
  }

  /** Post a threaded message exactly once, even if a previous attempt's answer was lost. */
  private async postOnce(message: Notification, ctx: SendContext, p: Payload): Promise<string> {
    const key = message.dedupeKey;
    const intent = `posting:${key}`;
    const state = message.runId ? await ctx.getState(message.runId) : {};
    if (message.attempts > 0 || state[intent]) {
      const found = await this.findPosted(p.channel, p.threadTs, key);
      if (found) return found;
    }
    if (message.runId && !state[intent]) await ctx.setState(message.runId, { [intent]: true });
    const metadata = { event_type: METADATA_EVENT, event_payload: { key, run_id: message.runId ?? "" } };
    const res = await this.withBlocksFallback(
      "chat.postMessage",
      (blocks) =>
        this.o.client.chat.postMessage({
          channel: p.channel,
          thread_ts: p.threadTs,
          text: p.text,
          ...(blocks ? { blocks } : {}),
          metadata,
          unfurl_links: false,
          unfurl_media: false,
        } as never),
      p.blocks,
    );
    return String((res as { ts?: string }).ts);
  }

  /** A message of ours in the thread carrying this dedupe key, if Slack already has it. */
  private async findPosted(channel: string, threadTs: string, key: string): Promise<string | null> {
    let cursor: string | undefined;
    for (let page = 0; page < 20; page++) {
      const res = await this.call("conversations.replies", () =>
        this.o.client.conversations.replies({ channel, ts: threadTs, include_all_metadata: true, limit: 200, ...(cursor ? { cursor } : {}) }),
      ).catch((e) => {
        if (e instanceof SlackCallError && e.slackError === "thread_not_found") return null;
        throw e;
      });
      if (!res) return null;
      for (const m of (res.messages ?? []) as { ts?: string; metadata?: { event_type?: string; event_payload?: Record<string, unknown> } }[]) {
        if (m.metadata?.event_type === METADATA_EVENT && m.metadata.event_payload?.key === key && m.ts) return m.ts;
      }
      cursor = res.response_metadata?.next_cursor || undefined;
      if (!cursor) return null;
    }
    return null;
  }

  /** Reactions are idempotent: "already_reacted" / "no_reaction" count as done. */
  private async react(p: Payload): Promise<void> {
    for (const name of p.remove ?? []) {
      await this.call("reactions.remove", () => this.o.client.reactions.remove({ channel: p.channel, timestamp: p.ts!, name })).catch((e) => {
        if (e instanceof SlackCallError && ["no_reaction", "message_not_found"].includes(e.slackError)) return;
        throw e;
      });
    }
    for (const name of p.add ?? []) {
      await this.call("reactions.add", () => this.o.client.reactions.add({ channel: p.channel, timestamp: p.ts!, name })).catch((e) => {
        if (e instanceof SlackCallError && e.slackError === "already_reacted") return;
        throw e;
      });
    }
  }
}
