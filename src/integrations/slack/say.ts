/**
 * Things Deckhand says in a Slack thread besides a run's own reports ("which repo?", help, a refusal, "nothing to
 * stop"...): a notification with no run in the outbox, under the thread's ordering key (the one `planSlack` gives
 * the run's messages), sent by `SlackNotifier` as a `reply`. A Slack outage or a restart delays such a reply but
 * never loses it, and it never overtakes what the thread was told before. The reactions that acknowledge a person's
 * message (📥 a follow-up taken, ☑️ an answer) go the same way.
 */
import crypto from "node:crypto";
import type { Outbox } from "../../notify/outbox.ts";
import { reactOrderingKey, SURFACE, threadOrderingKey } from "./notifier.ts";

export interface SlackSay {
  (channel: string, threadTs: string, text: string, blocks?: unknown[]): Promise<void>;
}

/** `say(channel, threadTs, text, blocks?)`: queue a reply in that thread and wake the sender. */
export function slackSay(outbox: Pick<Outbox, "enqueue" | "kick">): SlackSay {
  return async (channel, threadTs, text, blocks) => {
    // Each call is its own message (Slack's retries of the request that caused it are deduplicated before this).
    const dedupeKey = `slack:say:${channel}:${threadTs}:${crypto.randomUUID()}`;
    const payload = { channel, threadTs, text, ...(blocks ? { blocks } : {}) };
    await outbox.enqueue(null, SURFACE, [{ dedupeKey, orderingKey: threadOrderingKey(channel, threadTs), kind: "reply", payload }]);
    outbox.kick();
  };
}

/** `react(channel, ts, name)`: queue a reaction on a person's message (📥 a follow-up taken, ☑️ an answer), once. */
export function slackReact(outbox: Pick<Outbox, "enqueue" | "kick">): (channel: string, ts: string, name: string) => Promise<void> {
  return async (channel, ts, name) => {
    const dedupeKey = `slack:react:${channel}:${ts}:${name}`;
    await outbox.enqueue(null, SURFACE, [{ dedupeKey, orderingKey: reactOrderingKey(channel, ts), kind: "react", payload: { channel, ts, add: [name] } }]);
    outbox.kick();
  };
}
