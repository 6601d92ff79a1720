/**
 * Slack: mention the bot to start a run, reply in the thread to steer it, see progress and the result in place.
 *
 * Events arrive at `POST /slack/events` (our Bolt receiver on Fastify, receiver.ts: signature and timestamp checked,
 * then `app.processEvent`) or over socket mode when SLACK_APP_TOKEN is set. What the thread is told goes through the
 * notification outbox (`SlackNotifier`), so a Slack outage or a restart delays a message but never loses it.
 */
import { App, LogLevel, webApi } from "@slack/bolt";
import type { Deckhand } from "../../app.ts";
import type { Logger } from "../../log/logger.ts";
import { BoundedWork } from "../bounded-work.ts";
import { type Integration, mountIntegration } from "../integration.ts";
import { EVENTS_PATH, FastifyReceiver } from "./receiver.ts";
import { type Incoming, SlackInbound } from "./inbound.ts";
import { slackMessageText } from "./message-text.ts";
import { SlackNotifier, SURFACE } from "./notifier.ts";
import { ANSWER_ACTION } from "./questions.ts";
import { registerInteractivity } from "./interactive.ts";
import { WORKING_STATUSES } from "../../runs/model.ts";

export { EVENTS_PATH };

export interface SlackMountOptions {
  /** Minimum time between two posts/edits in one thread (default 1000 ms). */
  minIntervalMs?: number;
  /** Web API request timeout for the notifier (default 15 s). */
  requestTimeoutMs?: number;
  /** How often working runs are re-planned so the elapsed time moves during quiet stretches (default 20 s). */
  refreshMs?: number;
}

/** Bolt's logger interface on top of ours. */
function boltLogger(log: Logger) {
  let level = LogLevel.INFO;
  const rank: Record<string, number> = { debug: 0, info: 1, warn: 2, error: 3 };
  const at = (l: LogLevel) => rank[l]! >= rank[level]!;
  const fmt = (msg: unknown[]) => msg.map((m) => (typeof m === "string" ? m : m instanceof Error ? m.message : JSON.stringify(m))).join(" ");
  return {
    debug: (...m: unknown[]) => at(LogLevel.DEBUG) && log.debug(fmt(m)),
    info: (...m: unknown[]) => at(LogLevel.INFO) && log.info(fmt(m)),
    warn: (...m: unknown[]) => at(LogLevel.WARN) && log.warn(fmt(m)),
    error: (...m: unknown[]) => at(LogLevel.ERROR) && log.error(fmt(m)),
    setLevel: (l: LogLevel) => void (level = l),
    getLevel: () => level,
    setName: () => {},
  };
}

/** `message` subtypes that are a person saying something (others are edits, deletions, joins...). */
const SPOKEN_SUBTYPES = new Set([undefined, "thread_broadcast", "file_share"]);

/** Mount Slack on `deckhand`'s server (before it listens); resolves with the start-up line. */
export function mountSlack(deckhand: Deckhand, opts: SlackMountOptions = {}): Promise<string> {
  return mountIntegration(deckhand, slack, opts);
}

/** The Slack integration (integration.ts): the events route, the notifier, socket mode when configured. */
export const slack: Integration<SlackMountOptions> = async (f, { deckhand, said, ...opts }) => {
  const c = deckhand.config;
  const socketMode = !!c.SLACK_APP_TOKEN;
  if (!c.SLACK_BOT_TOKEN || (!c.SLACK_SIGNING_SECRET && !socketMode)) {
    return said("slack: not configured (set SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN)");
  }
  const log = deckhand.log.child({ component: "slack" });
  const slackApiUrl = c.SLACK_API_URL ? c.SLACK_API_URL.replace(/\/*$/, "/") : undefined;
  const logger = boltLogger(log);
  // Too much waiting already: Slack is told 503 and retries later; nothing is read or stored.
  const receiver = socketMode ? undefined : new FastifyReceiver({ signingSecret: c.SLACK_SIGNING_SECRET!, bodyLimit: c.MAX_BODY_BYTES, log, busy: () => work.full() });
  const app = new App({
    token: c.SLACK_BOT_TOKEN,
    ...(receiver ? { receiver } : { socketMode: true, appToken: c.SLACK_APP_TOKEN }),
    // Both ids given: no auth.test round trip at start-up.
    ...(c.SLACK_BOT_ID && c.SLACK_BOT_USER_ID ? { botId: c.SLACK_BOT_ID, botUserId: c.SLACK_BOT_USER_ID } : {}),
    logger,
    clientOptions: { ...(slackApiUrl ? { slackApiUrl } : {}), retryConfig: { retries: 3, factor: 2, minTimeout: 500, maxTimeout: 5000 } },
  });

  const notifierClient = new webApi.WebClient(c.SLACK_BOT_TOKEN, {
    ...(slackApiUrl ? { slackApiUrl } : {}),
    // The outbox retries (and waits out 429s) itself; the client must answer at once.
    retryConfig: { retries: 0 },
    rejectRateLimitedCalls: true,
    timeout: opts.requestTimeoutMs ?? 15_000,
    logger,
  });
  deckhand.outbox.register(new SlackNotifier({ client: notifierClient, minIntervalMs: opts.minIntervalMs }));

  // Bolt acknowledges an event before its listener runs; the listener only queues the work (bounded, see
  // bounded-work.ts), so an ack never waits for the database or for other mentions.
  const work = new BoundedWork({ concurrency: c.INBOUND_CONCURRENCY, maxQueued: c.INBOUND_MAX_QUEUED, log });
  const enqueue = (m: Incoming, botUserId: string | undefined) => {
    if (!work.push(() => inbound.handle(m, botUserId))) log.error({ channel: m.channel, ts: m.ts }, "Slack event dropped: the inbound queue is full");
  };
  deckhand.onClose(() => work.close());
  const policy = { users: c.SLACK_ALLOWED_USERS, channels: c.SLACK_ALLOWED_CHANNELS, allowExternal: c.SLACK_ALLOW_EXTERNAL };
  const inbound = new SlackInbound({ deckhand, client: app.client, log, channelRepos: c.SLACK_CHANNEL_REPOS, defaultRepo: c.DEFAULT_REPO, policy });

  /** The parts of a Slack message event that Deckhand reads. */
  const incoming = (e: Record<string, string | undefined>, body: unknown, extra: Pick<Incoming, "mentioned"> & Partial<Incoming>): Incoming => ({
    eventId: (body as { event_id?: string }).event_id,
    channel: e.channel!,
    ts: e.ts!,
    threadTs: e.thread_ts,
    user: e.user,
    team: e.team,
    workspace: (body as { team_id?: string }).team_id,
    userTeam: e.user_team ?? e.team,
    text: slackMessageText(e),
    ...extra,
  });

  app.event("app_mention", async ({ event, body, context }) => {
    const e = event as unknown as Record<string, string | undefined>;
    if (e.bot_id) return;
    enqueue(incoming(e, body, { mentioned: true }), context.botUserId);
  });

  app.event("message", async ({ event, body, context }) => {
    const e = event as unknown as Record<string, string | undefined>;
    if (!SPOKEN_SUBTYPES.has(e.subtype) || e.bot_id || !e.user) return;
    const text = slackMessageText(e);
    const m = incoming(e, body, { channelType: e.channel_type, mentioned: !!context.botUserId && text.includes(`<@${context.botUserId}`) });
    enqueue(m, context.botUserId);
  });

  // A question's buttons (questions.ts): acknowledged at once, answered in the bounded queue like messages.
  app.action(new RegExp(`^${ANSWER_ACTION}_`), async ({ ack, body, action }) => {
    await ack();
    const b = body as unknown as { user?: { id?: string; team_id?: string }; team?: { id?: string }; channel?: { id?: string }; message?: { ts?: string; thread_ts?: string } };
    const click = { value: (action as { value?: unknown }).value, user: b.user?.id, channel: b.channel?.id, workspace: b.team?.id, userTeam: b.user?.team_id ?? b.team?.id, threadTs: b.message?.thread_ts ?? b.message?.ts };
    if (!work.push(() => inbound.onAnswerButton(click).catch((e) => log.error({ err: (e as Error).message }, "answering from a Slack button failed")))) log.error("Slack answer dropped: the inbound queue is full");
  });

  registerInteractivity(app, { deckhand, client: app.client, inbound, work, log, policy });

  app.error(async (err) => {
    log.error({ err: err.message, code: (err as { code?: string }).code }, "Slack event handling failed");
  });

  if (receiver) {
    // Served only by the web role (a worker answers no HTTP besides health and metrics).
    if (deckhand.role !== "worker") await f.register(receiver.plugin);
  } else {
    // Connect in the background: an unreachable Slack must not keep the server from starting.
    app
      .start()
      .then(() => log.info("connected to Slack (socket mode)"))
      .catch((e: Error) => log.error({ err: e.message }, "could not connect to Slack in socket mode"));
    deckhand.onClose(async () => {
      await app.stop().catch(() => {});
    });
  }

  // Keep the status message's elapsed time moving while an agent thinks quietly.
  const refresh = setInterval(() => {
    void (async () => {
      for (const status of WORKING_STATUSES) {
        for (const run of await deckhand.store.list({ source: SURFACE, status, limit: 200 })) await deckhand.outbox.planRun(run.id);
      }
    })().catch((e) => log.debug({ err: (e as Error).message }, "status refresh failed"));
  }, opts.refreshMs ?? 20_000);
  refresh.unref();
  deckhand.onClose(() => clearInterval(refresh));

  const repos = Object.entries(c.SLACK_CHANNEL_REPOS).map(([ch, r]) => `${ch}→${r}`);
  said(
    socketMode
      ? `slack: socket mode${repos.length ? ` (channel repos: ${repos.join(", ")})` : ""}`
      : `slack: events at ${c.PUBLIC_URL}${EVENTS_PATH}${repos.length ? ` (channel repos: ${repos.join(", ")})` : ""}`,
  );
};
