/**
 * The Follow-up button on a run's status message (messages.ts) and its modal: a click opens a form ("What should
 * the agent do next?") whose private_metadata names the run and its conversation; submitting it gives the run its
 * next input exactly as a reply in the thread does (`service.followUp`), and the thread is told who asked for what.
 *
 * Everything that comes back from Slack is treated as hostile: the metadata is parsed with bounds and checked
 * against the run (it must be that channel's and thread's run), the person must pass the allowlist for that
 * channel, and the text must be there and fit. A refusal is shown on the form (or privately for a click).
 */
import type { App } from "@slack/bolt";
import type { Run } from "../../db/schema.ts";
import { runLog } from "../../log/logger.ts";
import { isTerminal } from "../../runs/model.ts";
import { RunInputError } from "../../runs/run-service.ts";
import { type SlackSpeaker, slackRefusal } from "./allowlist.ts";
import { escapeMrkdwn, FOLLOWUP_ACTION, followUpEcho } from "./messages.ts";
import { slackRef } from "./notifier.ts";
import { slackSay } from "./say.ts";
import type { InteractiveDeps } from "./interactive.ts";

/** The modal's callback_id, its input block and the input's action id. */
export const FOLLOWUP_VIEW = "deckhand_followup";
export const FOLLOWUP_BLOCK = "followup_text";
export const FOLLOWUP_INPUT = "text";
/** The longest follow-up the form takes (Slack's own limit for a plain-text input). */
export const FOLLOWUP_MAX_CHARS = 3000;
/** Slack's limit for private_metadata. */
const METADATA_MAX = 3000;

/** The run a form is for, and the conversation it was opened from. */
export interface FollowUpTarget {
  run: string;
  channel: string;
  thread: string;
}

const RUN_ID = /^[\w-]{1,100}$/;
const CHANNEL_ID = /^[A-Z0-9]{2,40}$/;
const TS = /^\d{1,12}\.\d{1,8}$/;

/** The modal for a run's follow-up. Pure. */
export function followUpModal(t: FollowUpTarget, title: string): Record<string, unknown> {
  const name = title.replace(/\s+/g, " ").trim();
  return {
    type: "modal",
    callback_id: FOLLOWUP_VIEW,
    title: { type: "plain_text", text: "Follow-up" },
    submit: { type: "plain_text", text: "Send" },
    close: { type: "plain_text", text: "Cancel" },
    private_metadata: JSON.stringify(t),
    blocks: [
      { type: "context", elements: [{ type: "mrkdwn", text: `Run: ${escapeMrkdwn(name.length > 150 ? `${name.slice(0, 149)}…` : name || t.run)}` }] },
      {
        type: "input",
        block_id: FOLLOWUP_BLOCK,
        label: { type: "plain_text", text: "What should the agent do next?" },
        element: { type: "plain_text_input", action_id: FOLLOWUP_INPUT, multiline: true, max_length: FOLLOWUP_MAX_CHARS, placeholder: { type: "plain_text", text: "Steer the work, or ask for more once it is done" } },
      },
    ],
  };
}

/** The target in a submitted form's private_metadata, or null when it is not one of ours. Pure. */
export function parseFollowUpMetadata(raw: unknown): FollowUpTarget | null {
  if (typeof raw !== "string" || !raw || raw.length > METADATA_MAX) return null;
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return null;
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) return null;
  const o = v as Record<string, unknown>;
  const get = (k: string) => (Object.hasOwn(o, k) && typeof o[k] === "string" ? (o[k] as string) : "");
  const t = { run: get("run"), channel: get("channel"), thread: get("thread") };
  return RUN_ID.test(t.run) && CHANNEL_ID.test(t.channel) && TS.test(t.thread) ? t : null;
}

/** The text typed into a submitted form (its state.values), or what to show on the input instead. Pure. */
export function followUpText(values: unknown): { text: string } | { error: string } {
  const at = (o: unknown, k: string): unknown => (o && typeof o === "object" && !Array.isArray(o) && Object.hasOwn(o, k) ? (o as Record<string, unknown>)[k] : undefined);
  const value = at(at(at(values, FOLLOWUP_BLOCK), FOLLOWUP_INPUT), "value");
  const text = typeof value === "string" ? value.trim() : "";
  if (!text) return { error: "Write what the agent should do next." };
  if (text.length > FOLLOWUP_MAX_CHARS) return { error: `That is ${text.length} characters; the limit is ${FOLLOWUP_MAX_CHARS}. Put the rest in a thread reply.` };
  return { text };
}

/** Why a form (or a click) for `target` must not reach `run`, or null when it may. Pure. */
export function followUpProblem(target: FollowUpTarget, run: Pick<Run, "source" | "sourceRef" | "status"> | null, what: "form" | "button" = "form"): string | null {
  const ref = run ? slackRef(run) : null;
  if (!run || !ref || ref.channel !== target.channel || ref.threadTs !== target.thread) return `This ${what} does not belong to a run in this conversation.`;
  if (isTerminal(run.status)) return `This run is already ${run.status}: reply in its thread to start a new one.`;
  return null;
}


/** What the Follow-up button and form need: the same as the rest of Slack's interactivity. */
export type FollowUpDeps = InteractiveDeps;

type Body = { trigger_id?: unknown; user?: { id?: string; name?: string; team_id?: string }; team?: { id?: string } | null; channel?: { id?: string }; message?: { ts?: string; thread_ts?: string } };

export function registerFollowUp(app: App, d: FollowUpDeps): void {
  const { service } = d.deckhand;
  const log = d.log;
  const refusal = (w: SlackSpeaker) => (d.policy ? slackRefusal(w, d.policy) : w.user ? null : "I only take requests from people.");
  const tell = async (w: SlackSpeaker, text: string, threadTs?: string) => {
    if (!w.user || !w.channel) return;
    await d.client.chat.postEphemeral({ channel: w.channel, user: w.user, text, ...(threadTs ? { thread_ts: threadTs } : {}) }).catch((e) => log.warn({ err: (e as Error).message }, "could not answer in Slack"));
  };
  /** The one place this module posts in a thread: through the outbox, in order with the run's own messages. */
  const say = slackSay(d.deckhand.outbox);
  /** A person's name for the run's input and the thread line, best effort (users:read). */
  const nameOf = async (user: string, fallback?: string): Promise<string> => {
    const info = await Promise.race([d.client.users.info({ user }).catch(() => null), new Promise<null>((r) => setTimeout(() => r(null), 1500).unref())]);
    const u = info?.user as { name?: string; real_name?: string; profile?: { display_name?: string; real_name?: string } } | undefined;
    return u?.profile?.display_name || u?.profile?.real_name || u?.real_name || u?.name || fallback || user;
  };

  // A click on Follow-up: opens the form at once (the click's trigger_id is good for a few seconds only).
  app.action(FOLLOWUP_ACTION, async ({ ack, body, action }) => {
    await ack();
    const b = body as unknown as Body;
    const w: SlackSpeaker = { user: b.user?.id, channel: b.channel?.id ?? "", workspace: b.team?.id, userTeam: b.user?.team_id ?? b.team?.id };
    const thread = b.message?.thread_ts ?? b.message?.ts;
    const trigger = typeof b.trigger_id === "string" ? b.trigger_id.slice(0, 200) : "";
    const target: FollowUpTarget = { run: String((action as { value?: unknown }).value ?? "").slice(0, 100), channel: w.channel, thread: thread ?? "" };
    try {
      const no = refusal(w);
      if (no) return await tell(w, no, thread);
      const run = RUN_ID.test(target.run) ? await service.store.get(target.run) : null;
      const problem = followUpProblem(target, run, "button");
      if (problem) return await tell(w, problem, thread);
      await d.client.views.open({ trigger_id: trigger, view: followUpModal(target, run!.title) as never });
    } catch (e) {
      log.warn({ err: (e as Error).message, user: w.user }, "could not open the follow-up form");
      await tell(w, "I could not open the follow-up form; reply in the thread instead.", thread);
    }
  });

  // The form submitted: checked and answered on the form; the input and the thread line follow in the queue.
  app.view({ callback_id: FOLLOWUP_VIEW, type: "view_submission" }, async ({ ack, body, view }) => {
    const b = body as unknown as Body;
    const refuse = (message: string) => ack({ response_action: "errors", errors: { [FOLLOWUP_BLOCK]: message } });
    const target = parseFollowUpMetadata(view.private_metadata);
    if (!target) return void (await refuse("This form is not one of Deckhand's: open it again from the run's status message."));
    const w: SlackSpeaker = { user: b.user?.id, channel: target.channel, workspace: b.team?.id, userTeam: b.user?.team_id ?? b.team?.id };
    const no = refusal(w);
    if (no) return void (await refuse(no));
    const typed = followUpText(view.state?.values);
    if ("error" in typed) return void (await refuse(typed.error));
    const { text } = typed;
    let problem: string | null;
    try {
      problem = followUpProblem(target, await service.store.get(target.run));
      // One input per form: a replayed submission of the same view adds nothing.
      if (!problem && typeof view.id === "string" && view.id.length <= 100 && !(await d.inbound.claim(`slack:view:${view.id}`, target.run))) return void (await ack({ response_action: "clear" }));
    } catch (e) {
      log.error({ err: (e as Error).message }, "checking a follow-up form failed");
      problem = "Something went wrong on Deckhand's side: try again, or reply in the thread.";
    }
    if (problem) return void (await refuse(problem));
    await ack({ response_action: "clear" });
    const t = target;
    const deliver = async () => {
      const author = await nameOf(w.user!, b.user?.name);
      try {
        await service.followUp(t.run, { text, author, source: "slack" });
      } catch (e) {
        if (!(e instanceof RunInputError)) throw e;
        return tell(w, e.problem === "conflict" ? "The run ended before your follow-up reached it: reply in its thread to start a new one." : `That follow-up was not taken: ${escapeMrkdwn(e.message)}`, t.thread);
      }
      runLog(log, t.run).info({ user: w.user }, "follow-up from the Slack form");
      await say(t.channel, t.thread, followUpEcho(author, text));
    };
    if (!d.work.push(() => deliver().catch((e) => log.error({ err: (e as Error).message }, "a follow-up from the Slack form failed")))) {
      log.error("Slack follow-up dropped: the inbound queue is full");
      await tell(w, "I'm too busy to take that follow-up right now: try again in a minute.", t.thread);
    }
  });
}
