/**
 * Slack interactivity beyond messages: the Stop and Follow-up buttons on a run's status message, the `/deckhand` command
 * (`run`, `status`, `stop`, `help`), the "Send to Deckhand" message shortcut, and App Home (the person's recent
 * runs). Every entry checks who may drive runs (allowlist.ts) and acts only on runs of the conversation it came
 * from; requests are acknowledged at once and the work goes through the bounded inbound queue. Commands and
 * shortcuts that start work become ordinary Slack requests (`SlackInbound.handle`), so they are deduplicated,
 * routed and answered exactly like a mention.
 */
import type { App, webApi } from "@slack/bolt";
import type { Deckhand } from "../../app.ts";
import type { Run } from "../../db/schema.ts";
import type { Logger } from "../../log/logger.ts";
import { runLog } from "../../log/logger.ts";
import { isTerminal } from "../../runs/state-machine.ts";
import type { BoundedWork } from "../bounded-work.ts";
import { type SlackPolicy, slackRefusal } from "./allowlist.ts";
import { registerFollowUp } from "./followup.ts";
import type { Incoming, SlackInbound } from "./inbound.ts";
import { escapeMrkdwn, helpText, REPO_ACTION, STOP_ACTION } from "./messages.ts";
import { slackMessageText } from "./message-text.ts";
import { slackRef } from "./notifier.ts";

export const SHORTCUT_ID = "send_to_deckhand";
export const COMMAND = "/deckhand";
const HOME_RUNS = 10;

export interface InteractiveDeps {
  deckhand: Deckhand;
  client: InstanceType<typeof webApi.WebClient>;
  inbound: SlackInbound;
  work: BoundedWork;
  log: Logger;
  policy?: SlackPolicy;
}

/** The parts of an interactive payload that say who and where. */
interface Who {
  user?: string;
  channel?: string;
  workspace?: string;
  userTeam?: string;
}

const line = (r: Run, url: string) => `• <${url}|${escapeMrkdwn(r.title.slice(0, 80))}> — ${r.status} · \`${escapeMrkdwn(r.repo)}\``;

export function registerInteractivity(app: App, d: InteractiveDeps): void {
  const { deckhand, log } = d;
  const { service } = deckhand;
  const refusal = (w: Who) => (d.policy ? slackRefusal({ user: w.user, channel: w.channel ?? "", workspace: w.workspace, userTeam: w.userTeam }, d.policy) : w.user ? null : "I only take requests from people.");
  const queue = (what: string, fn: () => Promise<void>) => {
    if (!d.work.push(() => fn().catch((e) => log.error({ err: (e as Error).message }, `${what} failed`)))) log.error(`Slack ${what} dropped: the inbound queue is full`);
  };
  // Private answers (chat.postEphemeral) are sent directly, not through the outbox: an ephemeral message is not in
  // the thread's history (a retry could not tell whether it was already posted) and is only useful at once. Bolt's
  // client retries them a few times. What the whole thread sees goes through the outbox (say.ts, notifier.ts).
  const tell = async (w: Who, text: string, threadTs?: string) => {
    if (!w.user || !w.channel) return;
    await d.client.chat.postEphemeral({ channel: w.channel, user: w.user, text, ...(threadTs ? { thread_ts: threadTs } : {}) }).catch((e) => log.warn({ err: (e as Error).message }, "could not answer in Slack"));
  };
  /** This person's runs started from Slack, newest first. */
  const runsOf = async (user: string) => (await service.store.list({ source: "slack", limit: 200 })).filter((r) => (r.sourceRef as { user?: unknown }).user === user);

  // The Stop button on a status message: stops that message's run, for a person allowed to, in that conversation.
  app.action(STOP_ACTION, async ({ ack, body, action }) => {
    await ack();
    const b = body as unknown as { user?: { id?: string; team_id?: string }; team?: { id?: string }; channel?: { id?: string }; message?: { ts?: string; thread_ts?: string } };
    const w: Who = { user: b.user?.id, channel: b.channel?.id, workspace: b.team?.id, userTeam: b.user?.team_id ?? b.team?.id };
    const thread = b.message?.thread_ts ?? b.message?.ts;
    const runId = String((action as { value?: unknown }).value ?? "").slice(0, 100);
    queue("stop button", async () => {
      const no = refusal(w);
      if (no) return tell(w, no, thread);
      const run = await service.store.get(runId);
      const ref = run ? slackRef(run) : null;
      if (!run || !ref || ref.channel !== w.channel || (thread && ref.threadTs !== thread)) return tell(w, "This button does not belong to a run in this conversation.", thread);
      if (isTerminal(run.status)) return tell(w, `Nothing to stop: this run is already ${run.status}.`, thread);
      await service.stop(run.id, { author: w.user ?? null, source: "slack" });
      runLog(log, run.id).info({ user: w.user }, "stopped with the Slack button");
    });
  });

  // The Follow-up button and its modal (followup.ts).
  registerFollowUp(app, d);

  // The "which repo?" picker: the choice answers the question as a reply in that thread would.
  app.action(new RegExp(`^${REPO_ACTION}_`), async ({ ack, body, action }) => {
    await ack();
    const b = body as unknown as { user?: { id?: string; team_id?: string }; team?: { id?: string }; channel?: { id?: string }; message?: { ts?: string; thread_ts?: string } };
    const a = action as { value?: unknown; selected_option?: { value?: unknown }; action_ts?: string };
    const repo = String(a.selected_option?.value ?? a.value ?? "").slice(0, 200);
    const w: Who = { user: b.user?.id, channel: b.channel?.id, workspace: b.team?.id, userTeam: b.user?.team_id ?? b.team?.id };
    const root = b.message?.thread_ts ?? b.message?.ts;
    if (!repo || !w.channel || !root) return;
    // A click has no message ts of its own: the action's time stands in (deduplicates Slack's retries of it).
    const ts = String(a.action_ts ?? Date.now() / 1000);
    queue("repo picker", () => d.inbound.handle({ channel: w.channel!, ts, threadTs: root, user: w.user, workspace: w.workspace, userTeam: w.userTeam, text: repo, mentioned: false, repoPick: true }, undefined));
  });

  // `/deckhand run|status|stop|help`: answered privately at once; `run` posts the request in the channel and the
  // run lives in that message's thread.
  app.command(COMMAND, async ({ ack, command }) => {
    const w: Who = { user: command.user_id, channel: command.channel_id, workspace: command.team_id, userTeam: command.team_id };
    const [verb = "", ...rest] = String(command.text ?? "").trim().split(/\s+/);
    const arg = rest.join(" ").trim();
    const no = refusal(w);
    if (no) return void (await ack({ response_type: "ephemeral", text: no }));
    switch (verb.toLowerCase()) {
      case "run": {
        if (!arg) return void (await ack({ response_type: "ephemeral", text: "Usage: `/deckhand run [repo=<name>] <task>`" }));
        await ack({ response_type: "ephemeral", text: "On it: I'll post your request here and work in its thread." });
        return queue("/deckhand run", async () => {
          // One post per command: the same signed request again (a replay within Slack's five minutes) posts nothing.
          const trigger = typeof command.trigger_id === "string" && command.trigger_id ? command.trigger_id.slice(0, 200) : null;
          if (trigger && !(await d.inbound.claim(`slack:command:${trigger}`))) return;
          // Direct, not through the outbox: this message becomes the run's thread, so its ts is needed before the
          // run exists. If Slack refuses it (after the client's retries), the person is told and nothing starts.
          const posted = await d.client.chat.postMessage({ channel: w.channel!, text: `<@${w.user}> asked me: ${escapeMrkdwn(arg.slice(0, 3000))}`, unfurl_links: false }).catch((e: Error) => {
            void tell(w, `I can't post in this channel (${e.message}). Invite me first (/invite @Deckhand), or mention me with the task.`);
            return null;
          });
          if (!posted?.ts) return;
          const m: Incoming = { eventId: `command:${command.trigger_id}`, channel: w.channel!, ts: String(posted.ts), user: w.user, workspace: w.workspace, userTeam: w.userTeam, text: arg, channelType: command.channel_name === "directmessage" ? "im" : undefined, mentioned: true };
          await d.inbound.handle(m, undefined);
        });
      }
      case "status": {
        const live = (await runsOf(w.user!)).filter((r) => !isTerminal(r.status)).slice(0, HOME_RUNS);
        const text = live.length ? `Your runs in progress:\n${live.map((r) => line(r, service.runPageUrl(r))).join("\n")}` : "You have no runs in progress.";
        return void (await ack({ response_type: "ephemeral", text }));
      }
      case "stop": {
        const live = (await runsOf(w.user!)).filter((r) => !isTerminal(r.status));
        const target = arg ? live.find((r) => r.id === arg) : live.length === 1 ? live[0] : undefined;
        if (!target) {
          const text = arg ? `No run ${escapeMrkdwn(arg)} of yours is in progress.` : live.length ? `Which one? \`/deckhand stop <run id>\`:\n${live.map((r) => `${line(r, service.runPageUrl(r))} (\`${r.id}\`)`).join("\n")}` : "You have no runs in progress.";
          return void (await ack({ response_type: "ephemeral", text }));
        }
        await service.stop(target.id, { author: w.user ?? null, source: "slack" });
        runLog(log, target.id).info({ user: w.user }, "stopped with /deckhand stop");
        return void (await ack({ response_type: "ephemeral", text: `Stopped ${target.title.slice(0, 80)} (\`${target.id}\`).` }));
      }
      default:
        return void (await ack({ response_type: "ephemeral", text: `\`/deckhand run [repo=<name>] <task>\`, \`/deckhand status\`, \`/deckhand stop [run id]\`.\n${helpText(deckhand.repos.names())}` }));
    }
  });

  // "Send to Deckhand" on a message: that message is the task, and the run lives in its thread.
  app.shortcut(SHORTCUT_ID, async ({ ack, shortcut }) => {
    await ack();
    const s = shortcut as unknown as { trigger_id?: string; user?: { id?: string; team_id?: string }; team?: { id?: string }; channel?: { id?: string }; message?: Record<string, unknown> & { ts?: string; thread_ts?: string } };
    const w: Who = { user: s.user?.id, channel: s.channel?.id, workspace: s.team?.id, userTeam: s.user?.team_id ?? s.team?.id };
    const msg = s.message;
    if (!w.channel || !msg?.ts) return;
    const text = slackMessageText(msg as Record<string, string | undefined>);
    queue("shortcut", async () => {
      if (!text.trim()) return tell(w, "That message has no text I could use as a task.", msg.thread_ts ?? msg.ts);
      const m: Incoming = { eventId: `shortcut:${s.trigger_id ?? msg.ts}`, channel: w.channel!, ts: msg.ts!, threadTs: msg.thread_ts, user: w.user, workspace: w.workspace, userTeam: w.userTeam, text, mentioned: true };
      await d.inbound.handle(m, undefined);
    });
  });

  // App Home: the person's recent runs, with their state and links.
  app.event("app_home_opened", async ({ event }) => {
    const e = event as unknown as { user?: string; tab?: string };
    if (!e.user || (e.tab && e.tab !== "home")) return;
    const user = e.user;
    queue("app home", async () => {
      const recent = (await runsOf(user)).slice(0, HOME_RUNS);
      const blocks: unknown[] = [
        { type: "header", text: { type: "plain_text", text: "Your recent runs" } },
        { type: "section", text: { type: "mrkdwn", text: recent.length ? recent.map((r) => line(r, service.runPageUrl(r))).join("\n") : "No runs yet. Mention me with a task in a channel, DM me, or use `/deckhand run <task>`." } },
        { type: "context", elements: [{ type: "mrkdwn", text: `Repos: ${deckhand.repos.names().map((n) => `\`${escapeMrkdwn(n)}\``).join(", ") || "none"}` }] },
      ];
      // Direct: the Home tab is drawn again every time it is opened (nothing is lost if Slack is down now).
      await d.client.views.publish({ user_id: user, view: { type: "home", blocks } as never });
    });
  });
}
