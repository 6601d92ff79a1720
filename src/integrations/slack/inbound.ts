/**
 * Slack messages in: a mention (or a DM) starts a run in a thread; a reply in that thread steers or continues
 * it; `stop` / `cancel` cancels it; `status` answers where it is; while the agent waits on a question, a reply (or
 * one of the question's buttons) answers it. Every delivery is deduplicated on the
 * envelope's `event_id` and on channel + ts (Slack retries; a mention that also arrives as a `message`).
 * Parse → look up the thread's conversation (src/intake/conversations.ts) → `decideIntake` → carry it out.
 */
import { eq } from "drizzle-orm";
import type { webApi } from "@slack/bolt";
import type { Deckhand } from "../../app.ts";
import { deliveries, type Run } from "../../db/schema.ts";
import { readDigest } from "../../events/digest-store.ts";
import type { Logger } from "../../log/logger.ts";
import { runLog } from "../../log/logger.ts";
import { ConversationStore, conversationKey, type AskedQuestion } from "../../intake/conversations.ts";
import { continuationOf, decideIntake, type IntakeDecision } from "../../intake/decide.ts";
import { UnknownRepoError } from "../../runs/repos.ts";
import { RunInputError } from "../../runs/run-service.ts";
import { runView } from "../../runs/run-view.ts";
import { askRepoContent, escapeMrkdwn, helpText, statusReply, unknownRepoText } from "./messages.ts";
import { type SlackPolicy, slackRefusal } from "./allowlist.ts";
import { type SlackRef, slackRef } from "./notifier.ts";
import { decodeAnswer } from "./questions.ts";
import { slackReact, slackSay } from "./say.ts";
import { answerQuestion, openQuestions } from "../../runs/answers.ts";
import { chooseRepo, parseMessage, type ParsedMessage } from "./parse.ts";

/** One message event, normalised from `app_mention` or `message`. */
export interface Incoming {
  eventId?: string;
  channel: string;
  ts: string;
  threadTs?: string;
  user?: string;
  team?: string;
  /** The workspace the event was delivered for (envelope team_id), and the speaker's own (Slack Connect). */
  workspace?: string;
  userTeam?: string;
  text: string;
  channelType?: string;
  /** Arrived as app_mention, or mentions the bot. */
  mentioned: boolean;
  /** A click on the "which repo?" picker (interactive.ts): it answers that question, and nothing else. */
  repoPick?: boolean;
}

export interface InboundOptions {
  deckhand: Deckhand;
  client: InstanceType<typeof webApi.WebClient>;
  log: Logger;
  channelRepos: Record<string, string>;
  defaultRepo?: string | null;
  /** Who may drive runs (allowlist.ts). */
  policy?: SlackPolicy;
}

const SOURCE = "slack";

/** The dedupe keys this integration keeps in the deliveries table (threads are conversations, not deliveries). */
export const keys = {
  event: (eventId: string) => `slack:event:${eventId}`,
  message: (channel: string, ts: string) => `slack:msg:${channel}:${ts}`,
};

/** The longest task kept with a "which repo?" question (Slack messages are at most 40,000 characters). */
const MAX_ASKED_TASK = 40_000;

/** One message on its way through the intake: what was said, where, and what the thread already has. */
interface Turn {
  m: Incoming;
  parsed: ParsedMessage;
  /** The thread's root ts: the conversation's key, and where we answer. */
  root: string;
  run: Run | null;
  asked: AskedQuestion | null;
  claimed: string[];
  botUserId: string | undefined;
}

/** The first prompt of a new run that picks up a closed run's branch: the earlier task and outcome as context. */
export function continuationPrompt(previous: Pick<Run, "branch" | "prompt">, summary: string | null, request: string): string {
  const context = [`Continue earlier work on this branch (${previous.branch}).`, `Earlier task: ${previous.prompt.slice(0, 4000)}`];
  if (summary) context.push(`What was done then: ${summary.slice(0, 4000)}`);
  return `${context.join("\n")}\n\nNew request: ${request}`;
}

export class SlackInbound {
  private readonly names = new Map<string, string>();
  private readonly conversations: ConversationStore;

  constructor(private readonly o: InboundOptions) {
    this.conversations = new ConversationStore(o.deckhand.database.db);
  }

  private get db() {
    return this.o.deckhand.database.db;
  }

  /** Record a delivery key; false when it was already there. */
  async claim(key: string, runId: string | null = null): Promise<boolean> {
    const rows = await this.db.insert(deliveries).values({ key, source: SOURCE, runId }).onConflictDoNothing().returning({ key: deliveries.key });
    return rows.length > 0;
  }

  private async linkRun(keysToLink: string[], runId: string): Promise<void> {
    for (const key of keysToLink) await this.db.update(deliveries).set({ runId }).where(eq(deliveries.key, key));
  }

  /** A person's name for run pages and "Stopped by ...", best effort (users:read). */
  private async authorName(user: string | undefined): Promise<string | null> {
    if (!user) return null;
    const cached = this.names.get(user);
    if (cached) return cached;
    const info = await Promise.race([
      this.o.client.users.info({ user }).catch(() => null),
      new Promise<null>((r) => setTimeout(() => r(null), 1500).unref()),
    ]);
    const u = info?.user as { name?: string; real_name?: string; profile?: { display_name?: string; real_name?: string } } | undefined;
    const name = u?.profile?.display_name || u?.profile?.real_name || u?.real_name || u?.name || user;
    this.names.set(user, name);
    return name;
  }

  /** Through the outbox (say.ts): ordered with the thread's run messages; a Slack outage delays it, never loses it. */
  private async reply(channel: string, threadTs: string, text: string, blocks?: unknown[]): Promise<void> {
    await slackSay(this.o.deckhand.outbox)(channel, threadTs, text, blocks);
  }

  private async react(channel: string, ts: string, name: string): Promise<void> {
    await slackReact(this.o.deckhand.outbox)(channel, ts, name);
  }

  private allowed(): string[] {
    return this.o.deckhand.repos.names();
  }

  /** Handle one message addressed to us (or a reply in one of our threads). Never throws. */
  async handle(m: Incoming, botUserId: string | undefined): Promise<void> {
    try {
      await this.route(m, botUserId);
    } catch (e) {
      this.o.log.error({ err: e, channel: m.channel, ts: m.ts }, "handling a Slack message failed");
    }
  }

  private async route(m: Incoming, botUserId: string | undefined): Promise<void> {
    const { store } = this.o.deckhand;
    const parsed = parseMessage(m.text, botUserId);
    const inThread = !!m.threadTs && m.threadTs !== m.ts;
    const root = inThread ? m.threadTs! : m.ts;
    // A message outside a thread starts a conversation of its own: only a thread has one to look up.
    const conversation = inThread ? await this.conversations.get(SOURCE, conversationKey.slackThread(m.channel, root)) : null;
    const run = conversation?.runId ? await store.get(conversation.runId) : null;
    const asked = run ? null : (conversation?.pending ?? null);
    const turn: Turn = { m, parsed, root, run, asked, claimed: [], botUserId };
    const decision = decideIntake({ text: parsed.text, addressed: m.mentioned || m.channelType === "im" }, {
      run,
      askedRepo: !!asked,
      agentAsking: run?.status === "running" && (await openQuestions(store, run.id)).length > 0,
      repo: run ? (parsed.repo ?? run.repo) : this.repoFor(m, parsed),
    });
    if (decision.kind === "ignore" && decision.why === "not addressed") return; // channel chatter
    // A picker clicked after its question was answered (the thread has a run now): not a reply to the run.
    if (m.repoPick && decision.kind !== "repo_answer") return;

    // Deduplicate: Slack's retries share the event_id; a mention also delivered as a message shares channel+ts.
    if (m.eventId) {
      if (!(await this.claim(keys.event(m.eventId)))) return;
      turn.claimed.push(keys.event(m.eventId));
    }
    if (!(await this.claim(keys.message(m.channel, m.ts)))) return;
    turn.claimed.push(keys.message(m.channel, m.ts));

    // Workflows and some apps mention us without a user: no anonymous runs (nobody could be asked or allowed).
    if (!m.user) {
      this.o.log.info({ channel: m.channel, ts: m.ts }, "refused a Slack message without a user");
      return this.reply(m.channel, root, "I only take work from a person, and this message has no user (a workflow or an app?). Ask someone to mention me with the task.");
    }
    // Who may drive runs: a refused person gets one short reply, and nothing else happens.
    const refusal = this.o.policy ? slackRefusal(m, this.o.policy) : null;
    if (refusal) {
      this.o.log.info({ user: m.user, channel: m.channel, userTeam: m.userTeam }, "Slack request refused by the allowlist");
      return this.reply(m.channel, root, refusal);
    }
    if (run) await this.linkRun(turn.claimed, run.id);
    return this.carryOut(decision, turn);
  }

  /** The repo a new run in this channel would use (`repo=`, the channel's, DEFAULT_REPO), if known. */
  private repoFor(m: Incoming, parsed: ParsedMessage): string | null {
    return chooseRepo(parsed, m.channel, this.o.channelRepos, this.o.defaultRepo);
  }

  /** Carry out what the intake decided for this message. */
  private async carryOut(d: IntakeDecision, t: Turn): Promise<void> {
    const { service } = this.o.deckhand;
    const { m, parsed, root, run } = t;
    const noRun = (word: string) => `There is no run in this thread. Mention me with a task to start one, or say \`${word}\` in a run's thread.`;
    switch (d.kind) {
      case "ignore":
        return;
      case "help":
        return this.reply(m.channel, root, helpText(this.allowed()));
      case "status": {
        if (!run) return this.reply(m.channel, root, noRun("status"));
        const c = statusReply(runView(run, await readDigest(service.store.db, run.id), service.runPageUrl(run)));
        return this.reply(m.channel, root, c.text, c.blocks);
      }
      case "stop": {
        if (!run) return this.reply(m.channel, root, noRun("stop"));
        if (!d.running) return this.reply(m.channel, root, `Nothing to stop: this run is already ${run.status}.`);
        const wasIdle = run.status === "idle";
        await service.stop(run.id, { author: await this.authorName(m.user), source: SOURCE });
        runLog(this.o.log, run.id).info({ user: m.user }, "stopped from Slack");
        // A working run gets its "Cancelled" message from the notifier; an idle one has nothing more to report.
        if (wasIdle) await this.reply(m.channel, root, "Closed: the sandbox is released. Reply in this thread to continue on the same branch in a fresh sandbox.");
        return;
      }
      case "agent_answer":
        return this.answerAgent(run!, t);
      case "steer":
      case "continue":
        if (await this.followedUp(run!, t)) return;
        // The run ended between our read and the follow-up: a new run continues it.
        return this.continueRun(run!, t);
      case "start":
        if (d.continueFrom && run) return this.continueRun(run, t, d.repo);
        return this.startRun(t, { repo: d.repo, prompt: parsed.text });
      case "ask_repo": {
        await this.conversations.ask(SOURCE, conversationKey.slackThread(m.channel, root), { kind: "repo", task: parsed.text.slice(0, MAX_ASKED_TASK), askedBy: m.user ?? null });
        const ask = askRepoContent(this.allowed());
        return this.reply(m.channel, root, ask.text, ask.blocks);
      }
      case "repo_answer":
        return this.onRepoAnswer(t);
    }
  }

  /** The agent asked something in this thread: the reply answers its oldest open question (words of one's own). */
  private async answerAgent(run: Run, { m, parsed, root }: Turn): Promise<void> {
    const log = runLog(this.o.log, run.id);
    try {
      const done = await answerQuestion(this.o.deckhand.service.store, run.id, null, { answer: parsed.text }, { author: await this.authorName(m.user), source: SOURCE });
      log.info({ user: m.user, questionId: done.question.id }, "question answered from a Slack reply");
      await this.react(m.channel, m.ts, "ballot_box_with_check");
    } catch (e) {
      if (!(e instanceof RunInputError)) throw e;
      // The message may name the agent's options: its words, escaped (an option `<!channel>` pings nobody).
      await this.reply(m.channel, root, `That didn't answer the agent's question: ${escapeMrkdwn(e.message)}.`);
    }
  }

  /** Steer a working run or continue an idle one; false when it ended meanwhile. */
  private async followedUp(run: Run, { m, parsed }: Turn): Promise<boolean> {
    try {
      await this.o.deckhand.service.followUp(run.id, { text: parsed.text, author: await this.authorName(m.user), source: SOURCE });
      runLog(this.o.log, run.id).info({ user: m.user, status: run.status }, run.status === "idle" ? "continuing from a Slack reply" : "steering from a Slack reply");
      await this.react(m.channel, m.ts, "inbox_tray");
      return true;
    } catch (e) {
      if (!(e instanceof RunInputError && e.problem === "conflict")) throw e;
      return false;
    }
  }

  /** The thread's run is over: a reply starts a new run in this thread, continuing its branch when it was pushed. */
  private async continueRun(run: Run, t: Turn, repo?: string): Promise<void> {
    const fresh = (await this.o.deckhand.service.store.get(run.id)) ?? run;
    const result = (fresh.result ?? {}) as { summary?: string | null };
    const next = continuationOf(fresh);
    const prompt = next.onBranch ? continuationPrompt(fresh, result.summary ?? null, t.parsed.text) : t.parsed.text;
    await this.startRun(t, { repo: repo ?? t.parsed.repo ?? fresh.repo, prompt, ref: next.ref, branch: next.branch });
  }

  /** A click on one of a question's buttons (questions.ts): answers it, for this conversation's run only. */
  async onAnswerButton(click: { value: unknown; user?: string; channel?: string; workspace?: string; userTeam?: string; threadTs?: string }): Promise<void> {
    const v = decodeAnswer(click.value);
    if (!v || !click.channel) return;
    const thread = click.threadTs;
    // Ephemeral (only the person who clicked sees it): sent directly. The outbox cannot carry it: an ephemeral
    // message is not in the thread's history, so a retry could not find whether it was already posted, and it is
    // only useful at once; Bolt's client retries it a few times.
    const tell = async (text: string) => {
      if (!click.user) return;
      await this.o.client.chat.postEphemeral({ channel: click.channel!, user: click.user, text, ...(thread ? { thread_ts: thread } : {}) }).catch((e) => this.o.log.warn({ err: (e as Error).message }, "could not answer in Slack"));
    };
    const refusal = this.o.policy ? slackRefusal({ user: click.user, channel: click.channel, workspace: click.workspace, userTeam: click.userTeam }, this.o.policy) : click.user ? null : "I only take answers from people.";
    if (refusal) return tell(refusal);
    const { service } = this.o.deckhand;
    const run = await service.store.get(v.r);
    const ref = run ? slackRef(run) : null;
    // A button only answers the run of the conversation it was posted in.
    if (!run || !ref || ref.channel !== click.channel || (thread && ref.threadTs !== thread)) return tell("This button does not belong to a run in this conversation.");
    try {
      const done = await answerQuestion(service.store, run.id, v.q, { answer: v.a }, { author: await this.authorName(click.user), source: SOURCE });
      runLog(this.o.log, run.id).info({ user: click.user, questionId: done.question.id }, "question answered with a Slack button");
    } catch (e) {
      if (!(e instanceof RunInputError)) throw e;
      await tell(escapeMrkdwn(e.message));
    }
  }

  /** A reply in a thread where we asked which repo to use: `repo=<name>` (or a bare allowed name) starts the run. */
  private async onRepoAnswer(t: Turn): Promise<void> {
    const { m, parsed, root } = t;
    const allowed = this.allowed();
    const bare = !parsed.repo && /^[\w.\-/]+$/.test(parsed.text) && allowed.includes(parsed.text) ? parsed.text : null;
    const repo = parsed.repo ?? bare;
    if (!repo) {
      // Not an answer: a mention here is a new request; anything else is talk in the thread.
      if (!m.mentioned) return;
      const d = decideIntake({ text: parsed.text, addressed: true }, { run: null, askedRepo: false, repo: this.repoFor(m, parsed) });
      return this.carryOut(d, { ...t, asked: null });
    }
    // The task is what was asked about (older installs kept none: the thread's first message), plus anything said now.
    let asked = t.asked?.task ?? null;
    if (asked === null) {
      const first = await this.o.client.conversations.replies({ channel: m.channel, ts: root, limit: 1 }).catch(() => null);
      asked = parseMessage(String(first?.messages?.[0]?.text ?? ""), t.botUserId).text;
    }
    const task = [asked, bare ? "" : parsed.text].filter(Boolean).join("\n\n").trim();
    if (!task) return this.reply(m.channel, root, "What should I do? Mention me with the task.");
    await this.startRun({ ...t, m: { ...m, ts: root }, parsed: { ...parsed, repo } }, { repo, prompt: task });
  }

  private async startRun(t: Turn, input: { repo: string; prompt: string; ref?: string | null; branch?: string }): Promise<void> {
    const { m, parsed, root, claimed } = t;
    const { service } = this.o.deckhand;
    if (!this.o.deckhand.repos.has(input.repo)) return this.reply(m.channel, root, unknownRepoText(input.repo, this.allowed()));
    const author = await this.authorName(m.user);
    const sourceRef: SlackRef = { channel: m.channel, threadTs: root, messageTs: m.ts, ...(m.team ? { team: m.team } : {}), ...(m.user ? { user: m.user } : {}) };
    let run: Run;
    try {
      run = await service.start({
        repo: input.repo,
        prompt: input.prompt,
        ref: input.ref ?? null,
        ...(input.branch ? { branch: input.branch, title: parsed.text.slice(0, 200) || undefined } : {}),
        source: SOURCE,
        sourceRef,
        createdBy: author,
        // The thread's run from now on (and the repo question asked there is settled), in the run's own transaction.
        conversation: { surface: SOURCE, keys: [conversationKey.slackThread(m.channel, root)] },
      });
    } catch (e) {
      if (e instanceof UnknownRepoError) return this.reply(m.channel, root, unknownRepoText(e.repo, e.allowed));
      if (e instanceof RunInputError) return this.reply(m.channel, root, `I can't start that: ${escapeMrkdwn(e.message)}`);
      throw e;
    }
    await this.linkRun(claimed, run.id);
    runLog(this.o.log, run.id).info({ channel: m.channel, user: m.user, repo: run.repo }, "run started from Slack");
  }
}
