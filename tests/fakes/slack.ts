/**
 * Fake Slack: the only stand-in for Slack in the test suite.
 *
 * Outbound (Web API): `startFakeSlack()` serves `POST /api/<method>` on 127.0.0.1 the way slack.com does. The real
 * `@slack/web-api` WebClient (and so a real Bolt `App`) talks to it through
 * `clientOptions: { slackApiUrl: fake.apiUrl }`. Requests are form-encoded (what WebClient sends; object-valued
 * arguments such as `blocks` arrive JSON-encoded and are decoded here), JSON (token in the Authorization header only,
 * like Slack) or multipart. Answers are always `200 {"ok":true,...}` or `200 {"ok":false,"error":"..."}`, except
 * injected failures (`failNext`): 429 + `retry-after`, a 500, or a call carried out whose answer is lost.
 *
 * Inbound (Events API): `mentionEnvelope` / `messageEnvelope` / `urlVerification` build the JSON bodies Slack
 * POSTs to the app's request URL, `signSlackRequest` computes Slack's v0 signature headers and `postSlackEvent` sends
 * a signed envelope (optionally as a retry, stale or badly signed).
 *
 * Modals: `views.open` exchanges the `trigger_id` of an interaction payload built here (`triggerId()`, used by
 * `blockActionsPayload` and friends) for an open view, recorded in `views`; `viewSubmissionPayload` builds what
 * Slack posts when that view's form is submitted.
 *
 * The defaults (team, bot user, bot id, app id) are shared by both halves, so envelopes built without ids match the
 * fake's `auth.test`.
 */
import { createHmac, randomBytes, randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { parse as parseQuery } from "node:querystring";

// ---------------------------------------------------------------------------------------------------------------
// Ids and timestamps
// ---------------------------------------------------------------------------------------------------------------

export const DEFAULT_TOKEN = "xoxb-1000000001-2000000002-FakeDeckhandBotToken00";
export const DEFAULT_TEAM_ID = "T0DECK0001";
export const DEFAULT_TEAM_DOMAIN = "deckhand-test";
export const DEFAULT_BOT_USER_ID = "U0DECKBOT1";
export const DEFAULT_BOT_ID = "B0DECKBOT1";
export const DEFAULT_APP_ID = "A0DECKAPP1";
export const DEFAULT_USER_ID = "U0HUMAN001";
export const DEFAULT_CHANNEL = "C0GENERAL1";
/** The deprecated verification token Slack still puts in every envelope (Bolt ignores it). */
export const DEFAULT_VERIFICATION_TOKEN = "FakeVerificationToken0001";

let lastTsMicros = 0;
/**
 * A Slack message timestamp ("1712345678.123456"), unique and strictly increasing within this process (shared by
 * the fake's `chat.postMessage` and the envelope helpers, so user and bot messages interleave in order).
 */
export function nextTs(): string {
  const now = Math.floor((performance.timeOrigin + performance.now()) * 1000);
  lastTsMicros = Math.max(now, lastTsMicros + 1);
  return microsToTs(lastTsMicros);
}
function microsToTs(us: number): string {
  return `${Math.floor(us / 1e6)}.${String(us % 1e6).padStart(6, "0")}`;
}
function tsToMicros(ts: string): number {
  const [s, f = "0"] = ts.split(".");
  return Number(s) * 1e6 + Number(f.padEnd(6, "0").slice(0, 6));
}
function compareTs(a: string, b: string): number {
  return tsToMicros(a) - tsToMicros(b);
}
/** A Slack-looking id: prefix + 10 upper-case alphanumerics. */
function slackId(prefix: string, len = 10): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  const bytes = randomBytes(len);
  let s = prefix;
  for (const b of bytes) s += alphabet[b % alphabet.length];
  return s;
}

// ---------------------------------------------------------------------------------------------------------------
// Web API fake
// ---------------------------------------------------------------------------------------------------------------

export interface SlackCall {
  method: string;
  /** Decoded arguments (token removed; JSON-encoded fields such as blocks/chunks/metadata parsed). */
  args: Record<string, any>;
  at: number; // Date.now() when the request arrived
  token?: string;
}

/** Every request the fake answered, including failures (`calls` holds only the successful ones). */
export interface SlackRequestRecord extends SlackCall {
  status: number; // HTTP status sent
  ok: boolean;
  error?: string; // Slack error code when ok is false
  injected?: boolean; // answered by a failNext rule
}

export interface SlackMessage {
  channel: string;
  ts: string;
  thread_ts?: string;
  text: string;
  blocks?: any[];
  /** Successful chat.update calls on this message. */
  edits: number;
  /** Author: the bot's user id for messages it posted, or the seeding user's id. */
  user?: string;
  /** Set on messages the bot posted. */
  bot_id?: string;
  /** chat.startStream'ed message that has not been stopped yet. */
  streaming?: boolean;
  /** Number of chat.appendStream calls on it. */
  appends?: number;
  metadata?: any;
  /** ts of the last chat.update (Slack's `edited.ts`). */
  edited_ts?: string;
}

export interface SlackReaction {
  channel: string;
  timestamp: string;
  name: string;
  op: "add" | "remove";
}

export interface SlackStatus {
  channel_id: string;
  thread_ts: string;
  status: string;
  loading_messages?: string[];
}

export interface SlackEphemeral {
  channel: string;
  user: string;
  message_ts: string;
  thread_ts?: string;
  text: string;
  blocks?: any[];
}

/** A view opened with views.open: the trigger it was exchanged for and the view as Slack stores it. */
export interface SlackOpenedView {
  trigger_id: string;
  view: Record<string, any>;
}

export interface SlackUser {
  id: string;
  name?: string;
  real_name?: string;
  display_name?: string;
  email?: string;
  is_bot?: boolean;
  tz?: string;
  deleted?: boolean;
}

/**
 * `lostAnswer`: the call is carried out (message stored, call recorded) but the connection is dropped before the
 * answer is sent, as when Slack did the work and the response was lost on the way back.
 */
export type FailMode = { status: 429; retryAfterSec: number } | { status: 500 } | { okFalse: string } | { lostAnswer: true };

export interface FakeSlack {
  apiUrl: string; // "http://127.0.0.1:<port>/api/"
  calls: SlackCall[]; // every successful call, in order
  /** Every answered request (successful, ok:false and injected failures), in order. */
  requests: SlackRequestRecord[];
  messages: Map<string, SlackMessage>; // by `${channel}:${ts}`
  reactions: SlackReaction[]; // log of successful reactions.add / reactions.remove
  /** assistant.threads.setStatus calls, in order. */
  statuses: SlackStatus[];
  ephemerals: SlackEphemeral[];
  /** Views opened with views.open (modals), in order. */
  views: SlackOpenedView[];
  /** Users known to users.info (unknown well-formed ids get a synthesized user). */
  users: Map<string, SlackUser>;
  botUserId: string;
  botId: string;
  teamId: string;
  appId: string;
  token: string;
  failNext(method: string | "*", n: number, mode: FailMode): void;
  /** Drops every pending failNext rule (Slack is healthy again). */
  clearFailures(): void;
  /** Delay every answer to `method` (or "*") by `ms` (0 clears). */
  setLatency(method: string | "*", ms: number): void;
  /** Resolves with the first successful call (past or future) matching `pred`; rejects after timeoutMs (5000). */
  waitFor(pred: (c: SlackCall) => boolean, timeoutMs?: number): Promise<SlackCall>;
  /** Messages of a thread, oldest first: the parent (if stored) and every reply with that thread_ts. */
  threadMessages(channel: string, threadTs: string): { ts: string; text: string; blocks?: any[]; edits: number; user?: string }[];
  /** Current reaction names (after adds/removes) on a message. */
  reactionsOn(channel: string, ts: string): string[];
  /** Stores a message as if a person had posted it (so conversations.replies / chat.update see it). Returns ts. */
  seedMessage(m: { channel: string; text: string; user?: string; ts?: string; thread_ts?: string }): string;
  /** Forgets calls, messages, reactions, statuses and failure/latency rules. */
  reset(): void;
  close(): Promise<void>;
}

export interface StartFakeSlackOptions {
  token?: string;
  botUserId?: string;
  botId?: string;
  teamId?: string;
  appId?: string;
  teamDomain?: string;
  /** Default 0 (a free port). */
  port?: number;
  /**
   * How long a trigger_id can be exchanged (views.open) after the interaction that issued it. Slack's is 3 s; the
   * default here is 30 s so that a loaded test machine does not turn a prompt exchange into expired_trigger_id.
   */
  triggerTtlMs?: number;
}

/** Arguments that WebClient JSON-encodes in form bodies; decoded back for handlers and `calls`. */
const JSON_FIELDS = new Set([
  "blocks",
  "attachments",
  "chunks",
  "metadata",
  "loading_messages",
  "prompts",
  "unfurls",
  "user_auth_blocks",
  "view",
]);

class SlackError extends Error {
  constructor(
    public code: string,
    public extra: Record<string, any> = {},
  ) {
    super(code);
  }
}

const SCOPES = [
  "app_mentions:read",
  "assistant:write",
  "channels:history",
  "chat:write",
  "groups:history",
  "im:history",
  "im:write",
  "reactions:read",
  "reactions:write",
  "users:read",
].join(",");

export async function startFakeSlack(opts: StartFakeSlackOptions = {}): Promise<FakeSlack> {
  const token = opts.token ?? DEFAULT_TOKEN;
  const botUserId = opts.botUserId ?? DEFAULT_BOT_USER_ID;
  const botId = opts.botId ?? DEFAULT_BOT_ID;
  const teamId = opts.teamId ?? DEFAULT_TEAM_ID;
  const appId = opts.appId ?? DEFAULT_APP_ID;
  const teamDomain = opts.teamDomain ?? DEFAULT_TEAM_DOMAIN;
  const botName = "deckhand";

  const calls: SlackCall[] = [];
  const requests: SlackRequestRecord[] = [];
  const messages = new Map<string, SlackMessage>();
  const reactions: SlackReaction[] = [];
  const currentReactions = new Map<string, Set<string>>(); // `${channel}:${ts}` -> names
  const statuses: SlackStatus[] = [];
  const ephemerals: SlackEphemeral[] = [];
  const views: SlackOpenedView[] = [];
  const exchanged = new Set<string>();
  const triggerTtlMs = opts.triggerTtlMs ?? 30_000;
  const users = new Map<string, SlackUser>();
  let failRules: { method: string; left: number; mode: FailMode }[] = [];
  let latency = new Map<string, number>();
  let waiters: { pred: (c: SlackCall) => boolean; resolve: (c: SlackCall) => void }[] = [];

  const key = (channel: string, ts: string) => `${channel}:${ts}`;

  const botProfile = () => ({
    id: botId,
    deleted: false,
    name: botName,
    updated: 1700000000,
    app_id: appId,
    icons: { image_36: "https://a.slack-edge.com/80588/img/plugins/app/bot_36.png" },
    team_id: teamId,
  });

  /** The message object Slack returns from chat.postMessage / chat.update / conversations.replies. */
  const wireMessage = (m: SlackMessage): Record<string, any> => {
    const out: Record<string, any> = { type: "message", ts: m.ts, text: m.text };
    if (m.bot_id) {
      Object.assign(out, { user: m.user, bot_id: m.bot_id, app_id: appId, team: teamId, bot_profile: botProfile() });
    } else {
      Object.assign(out, { user: m.user ?? DEFAULT_USER_ID, team: teamId, client_msg_id: randomUUID() });
    }
    if (m.blocks) out.blocks = m.blocks;
    if (m.metadata) out.metadata = m.metadata;
    if (m.edited_ts) out.edited = { user: m.user, ts: m.edited_ts };
    if (m.thread_ts) {
      out.thread_ts = m.thread_ts;
      if (m.thread_ts !== m.ts) {
        const parent = messages.get(key(m.channel, m.thread_ts));
        out.parent_user_id = parent?.user ?? DEFAULT_USER_ID;
      }
    }
    const replies = [...messages.values()].filter(
      (r) => r.channel === m.channel && r.thread_ts === m.ts && r.ts !== m.ts,
    );
    if (replies.length > 0) {
      replies.sort((a, b) => compareTs(a.ts, b.ts));
      Object.assign(out, {
        thread_ts: m.ts,
        reply_count: replies.length,
        reply_users_count: new Set(replies.map((r) => r.user)).size,
        latest_reply: replies[replies.length - 1].ts,
        reply_users: [...new Set(replies.map((r) => r.user))],
      });
    }
    const names = currentReactions.get(key(m.channel, m.ts));
    if (names && names.size > 0) {
      out.reactions = [...names].map((name) => ({ name, users: [botUserId], count: 1 }));
    }
    return out;
  };

  const permalink = (channel: string, ts: string, threadTs?: string) => {
    const base = `https://${teamDomain}.slack.com/archives/${channel}/p${ts.replace(".", "")}`;
    return threadTs && threadTs !== ts ? `${base}?thread_ts=${threadTs}&cid=${channel}` : base;
  };

  const str = (v: unknown): string | undefined => (v === undefined || v === null ? undefined : String(v));
  const need = (args: Record<string, any>, name: string, code: string): string => {
    const v = str(args[name]);
    if (v === undefined || v === "") throw new SlackError(code);
    return v;
  };
  /** chat.postMessage to a user id opens (fakes) the DM channel. */
  const resolveChannel = (channel: string) => (/^[UW][A-Z0-9]+$/.test(channel) ? `D${channel.slice(1)}` : channel);

  const validateContent = (args: Record<string, any>, needContent: boolean) => {
    const text = str(args.text);
    const blocks = args.blocks;
    const attachments = args.attachments;
    if (blocks !== undefined) {
      if (!Array.isArray(blocks)) throw new SlackError("invalid_blocks_format");
      const errors = validateBlocks(blocks);
      if (errors.length > 0) {
        throw new SlackError("invalid_blocks", {
          errors,
          response_metadata: { messages: errors.map((e) => `[ERROR] ${e}`) },
        });
      }
    }
    if (attachments !== undefined && !Array.isArray(attachments)) throw new SlackError("invalid_attachments");
    if (needContent && !text && !(Array.isArray(blocks) && blocks.length > 0) && !(Array.isArray(attachments) && attachments.length > 0)) {
      throw new SlackError("no_text");
    }
    if (text && text.length > 40_000) throw new SlackError("msg_too_long");
  };

  const methods: Record<string, (args: Record<string, any>) => Record<string, any>> = {
    "api.test": (args) => ({ args: Object.fromEntries(Object.entries(args)) }),

    "auth.test": () => ({
      url: `https://${teamDomain}.slack.com/`,
      team: "Deckhand Test",
      user: botName,
      team_id: teamId,
      user_id: botUserId,
      bot_id: botId,
      is_enterprise_install: false,
    }),

    "chat.postMessage": (args) => {
      const channel = resolveChannel(need(args, "channel", "channel_not_found"));
      validateContent(args, true);
      const threadTs = str(args.thread_ts) || undefined;
      if (threadTs !== undefined && !/^\d+\.\d+$/.test(threadTs)) throw new SlackError("invalid_thread_ts");
      const ts = nextTs();
      const m: SlackMessage = {
        channel,
        ts,
        text: str(args.text) ?? "",
        edits: 0,
        user: botUserId,
        bot_id: botId,
      };
      if (threadTs) m.thread_ts = threadTs;
      if (args.blocks) m.blocks = args.blocks;
      if (args.metadata) m.metadata = args.metadata;
      messages.set(key(channel, ts), m);
      return { channel, ts, message: wireMessage(m) };
    },

    "chat.update": (args) => {
      const channel = need(args, "channel", "channel_not_found");
      const ts = need(args, "ts", "message_not_found");
      const m = messages.get(key(channel, ts));
      if (!m) throw new SlackError("message_not_found");
      if (!m.bot_id) throw new SlackError("cant_update_message");
      validateContent(args, false);
      if (args.text === undefined && args.blocks === undefined && args.attachments === undefined) {
        throw new SlackError("no_text");
      }
      if (args.text !== undefined) m.text = String(args.text);
      // Like Slack: omitted blocks are kept, an empty array removes them.
      if (Array.isArray(args.blocks)) m.blocks = args.blocks.length > 0 ? args.blocks : undefined;
      if (args.metadata) m.metadata = args.metadata;
      m.edits += 1;
      m.edited_ts = nextTs();
      return { channel, ts, text: m.text, message: wireMessage(m) };
    },

    "chat.delete": (args) => {
      const channel = need(args, "channel", "channel_not_found");
      const ts = need(args, "ts", "message_not_found");
      const m = messages.get(key(channel, ts));
      if (!m) throw new SlackError("message_not_found");
      if (!m.bot_id) throw new SlackError("cant_delete_message");
      messages.delete(key(channel, ts));
      return { channel, ts };
    },

    "chat.postEphemeral": (args) => {
      const channel = resolveChannel(need(args, "channel", "channel_not_found"));
      const user = need(args, "user", "user_not_found");
      validateContent(args, true);
      const message_ts = nextTs();
      const e: SlackEphemeral = { channel, user, message_ts, text: str(args.text) ?? "" };
      if (args.thread_ts) e.thread_ts = String(args.thread_ts);
      if (args.blocks) e.blocks = args.blocks;
      ephemerals.push(e);
      return { message_ts };
    },

    "chat.getPermalink": (args) => {
      const channel = need(args, "channel", "channel_not_found");
      const ts = need(args, "message_ts", "message_not_found");
      // Lenient: messages Slack has but the fake never saw (people's messages) still get a link.
      const m = messages.get(key(channel, ts));
      return { channel, permalink: permalink(channel, ts, m?.thread_ts) };
    },

    "chat.startStream": (args) => {
      const channel = resolveChannel(need(args, "channel", "channel_not_found"));
      const threadTs = need(args, "thread_ts", "invalid_thread_ts");
      const ts = nextTs();
      const m: SlackMessage = {
        channel,
        ts,
        thread_ts: threadTs,
        text: streamText(args),
        edits: 0,
        user: botUserId,
        bot_id: botId,
        streaming: true,
        appends: 0,
      };
      messages.set(key(channel, ts), m);
      return { channel, ts };
    },

    "chat.appendStream": (args) => {
      const channel = need(args, "channel", "channel_not_found");
      const ts = need(args, "ts", "message_not_found");
      const m = messages.get(key(channel, ts));
      if (!m) throw new SlackError("message_not_found");
      if (!m.streaming) throw new SlackError("message_not_in_streaming_state");
      if (args.markdown_text === undefined && args.chunks === undefined) throw new SlackError("invalid_arguments");
      m.text += streamText(args);
      m.appends = (m.appends ?? 0) + 1;
      return { channel, ts };
    },

    "chat.stopStream": (args) => {
      const channel = need(args, "channel", "channel_not_found");
      const ts = need(args, "ts", "message_not_found");
      const m = messages.get(key(channel, ts));
      if (!m) throw new SlackError("message_not_found");
      if (!m.streaming) throw new SlackError("message_not_in_streaming_state");
      validateContent(args, false);
      m.text += streamText(args);
      if (Array.isArray(args.blocks) && args.blocks.length > 0) m.blocks = args.blocks;
      if (args.metadata) m.metadata = args.metadata;
      m.streaming = false;
      return { channel, ts, message: wireMessage(m) };
    },

    "reactions.add": (args) => {
      const { channel, timestamp, name } = reactionArgs(args);
      const k = key(channel, timestamp);
      const set = currentReactions.get(k) ?? new Set<string>();
      if (set.has(name)) throw new SlackError("already_reacted");
      set.add(name);
      currentReactions.set(k, set);
      reactions.push({ channel, timestamp, name, op: "add" });
      return {};
    },

    "reactions.remove": (args) => {
      const { channel, timestamp, name } = reactionArgs(args);
      const set = currentReactions.get(key(channel, timestamp));
      if (!set || !set.has(name)) throw new SlackError("no_reaction");
      set.delete(name);
      reactions.push({ channel, timestamp, name, op: "remove" });
      return {};
    },

    "reactions.get": (args) => {
      const channel = need(args, "channel", "channel_not_found");
      const ts = need(args, "timestamp", "no_item_specified");
      const m = messages.get(key(channel, ts));
      const names = [...(currentReactions.get(key(channel, ts)) ?? [])];
      const message = m ? wireMessage(m) : { type: "message", ts, text: "" };
      if (names.length > 0) message.reactions = names.map((name) => ({ name, users: [botUserId], count: 1 }));
      return { type: "message", channel, message };
    },

    "assistant.threads.setStatus": (args) => {
      const channel_id = need(args, "channel_id", "channel_not_found");
      const thread_ts = need(args, "thread_ts", "invalid_thread_ts");
      if (args.status === undefined) throw new SlackError("invalid_arguments");
      const s: SlackStatus = { channel_id, thread_ts, status: String(args.status) };
      if (Array.isArray(args.loading_messages)) s.loading_messages = args.loading_messages;
      statuses.push(s);
      return {};
    },

    "conversations.replies": (args) => {
      const channel = need(args, "channel", "channel_not_found");
      const ts = need(args, "ts", "thread_not_found");
      const thread = threadOf(channel, ts);
      if (thread.length === 0) throw new SlackError("thread_not_found");
      return paginate(thread.map(wireMessage), args);
    },

    "conversations.history": (args) => {
      const channel = need(args, "channel", "channel_not_found");
      const top = [...messages.values()]
        .filter((m) => m.channel === channel && (!m.thread_ts || m.thread_ts === m.ts))
        .sort((a, b) => compareTs(b.ts, a.ts));
      return { ...paginate(top.map(wireMessage), args), pin_count: 0 };
    },

    "conversations.info": (args) => {
      const channel = need(args, "channel", "channel_not_found");
      const isIm = channel.startsWith("D");
      return {
        channel: isIm
          ? { id: channel, created: 1700000000, is_im: true, is_org_shared: false, user: `U${channel.slice(1)}`, is_archived: false }
          : {
              id: channel,
              name: `channel-${channel.toLowerCase()}`,
              is_channel: channel.startsWith("C"),
              is_group: channel.startsWith("G"),
              is_im: false,
              is_private: channel.startsWith("G"),
              is_archived: false,
              is_member: true,
              created: 1700000000,
              context_team_id: teamId,
            },
      };
    },

    "views.publish": (args) => {
      const user = need(args, "user_id", "invalid_arguments");
      const view = typeof args.view === "string" ? JSON.parse(args.view) : args.view;
      if (!view || view.type !== "home" || !Array.isArray(view.blocks)) throw new SlackError("invalid_arguments");
      return { view: { id: slackId("V"), type: "home", blocks: view.blocks, user } };
    },

    "views.open": (args) => {
      const trigger = str(args.trigger_id) ?? str(args.interactivity_pointer);
      if (!trigger) throw new SlackError("invalid_arguments", { response_metadata: { messages: ["[ERROR] missing required field: trigger_id"] } });
      const issued = /^(\d{13})\.\d+\.[0-9a-f]+$/.exec(trigger);
      if (!issued) throw new SlackError("invalid_trigger_id");
      if (exchanged.has(trigger)) throw new SlackError("exchanged_trigger_id");
      if (Date.now() - Number(issued[1]) > triggerTtlMs) throw new SlackError("expired_trigger_id");
      const raw = args.view;
      if (typeof raw === "string" && Buffer.byteLength(raw) > 250_000) throw new SlackError("view_too_large");
      const view = typeof raw === "string" ? (() => { try { return JSON.parse(raw); } catch { return null; } })() : raw;
      if (!view || typeof view !== "object" || Array.isArray(view)) throw new SlackError("invalid_arguments");
      if (Buffer.byteLength(JSON.stringify(view)) > 250_000) throw new SlackError("view_too_large");
      const errors = validateModal(view);
      if (errors.length > 0) throw new SlackError("invalid_arguments", { response_metadata: { messages: errors.map((e) => `[ERROR] ${e}`) } });
      exchanged.add(trigger);
      const id = slackId("V");
      const opened = {
        id,
        team_id: teamId,
        type: "modal",
        title: view.title,
        ...(view.submit ? { submit: view.submit } : {}),
        close: view.close ?? { type: "plain_text", text: "Cancel", emoji: true },
        blocks: view.blocks,
        private_metadata: view.private_metadata ?? "",
        callback_id: view.callback_id ?? "",
        external_id: view.external_id ?? "",
        state: { values: {} },
        hash: `${Math.floor(Date.now() / 1000)}.${randomBytes(4).toString("hex")}`,
        clear_on_close: view.clear_on_close ?? false,
        notify_on_close: view.notify_on_close ?? false,
        previous_view_id: null,
        root_view_id: id,
        app_id: appId,
        app_installed_team_id: teamId,
        bot_id: botId,
      };
      views.push({ trigger_id: trigger, view: opened });
      return { view: opened };
    },

    "conversations.open": (args) => {
      const u = str(args.users) ?? str(args.channel);
      if (!u) throw new SlackError("users_list_not_supplied");
      const first = u.split(",")[0].trim();
      return { channel: { id: first.startsWith("D") ? first : `D${first.slice(1)}` } };
    },

    "users.info": (args) => {
      const id = need(args, "user", "user_not_found");
      const known = users.get(id);
      if (!known && !/^[UWB][A-Z0-9]{2,}$/.test(id)) throw new SlackError("user_not_found");
      const u: SlackUser = known ?? { id, is_bot: id === botUserId, name: id === botUserId ? botName : `user-${id.toLowerCase()}` };
      const name = u.name ?? `user-${id.toLowerCase()}`;
      const realName = u.real_name ?? (u.is_bot ? "Deckhand" : `User ${id}`);
      return {
        user: {
          id,
          team_id: teamId,
          name,
          deleted: u.deleted ?? false,
          real_name: realName,
          tz: u.tz ?? "Europe/London",
          tz_label: "Greenwich Mean Time",
          tz_offset: 0,
          is_admin: false,
          is_owner: false,
          is_bot: u.is_bot ?? false,
          is_app_user: false,
          updated: 1700000000,
          profile: {
            real_name: realName,
            display_name: u.display_name ?? name,
            real_name_normalized: realName,
            display_name_normalized: u.display_name ?? name,
            ...(u.email !== undefined ? { email: u.email } : u.is_bot ? {} : { email: `${name}@example.com` }),
            image_72: "https://secure.gravatar.com/avatar/0.jpg?s=72",
            team: teamId,
            ...(u.is_bot ? { bot_id: botId, api_app_id: appId } : {}),
          },
        },
      };
    },

    "bots.info": (args) => {
      const id = str(args.bot) ?? botId;
      return { bot: { ...botProfile(), id, user_id: id === botId ? botUserId : undefined } };
    },
  };

  function reactionArgs(args: Record<string, any>) {
    const channel = str(args.channel);
    const timestamp = str(args.timestamp);
    if (!channel || !timestamp) throw new SlackError("no_item_specified");
    const name = str(args.name);
    if (!name || !/^[a-z0-9_+'-]+(::skin-tone-[2-6])?$/.test(name)) throw new SlackError("invalid_name");
    return { channel, timestamp, name };
  }

  function streamText(args: Record<string, any>): string {
    let t = str(args.markdown_text) ?? "";
    if (Array.isArray(args.chunks)) {
      for (const c of args.chunks) if (c?.type === "markdown_text" && typeof c.text === "string") t += c.text;
    }
    return t;
  }

  function threadOf(channel: string, threadTs: string): SlackMessage[] {
    return [...messages.values()]
      .filter((m) => m.channel === channel && (m.ts === threadTs || m.thread_ts === threadTs))
      .sort((a, b) => compareTs(a.ts, b.ts));
  }

  function paginate(items: any[], args: Record<string, any>) {
    const limit = Math.max(1, Math.min(1000, Number(args.limit ?? 100) || 100));
    const start = args.cursor ? Number(Buffer.from(String(args.cursor), "base64").toString().replace(/^next_ts:/, "")) || 0 : 0;
    const page = items.slice(start, start + limit);
    const more = start + limit < items.length;
    return {
      messages: page,
      has_more: more,
      response_metadata: { next_cursor: more ? Buffer.from(`next_ts:${start + limit}`).toString("base64") : "" },
    };
  }

  const record = (call: SlackCall) => {
    calls.push(call);
    const still: typeof waiters = [];
    for (const w of waiters) {
      if (w.pred(call)) w.resolve(call);
      else still.push(w);
    }
    waiters = still;
  };

  const send = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      "content-type": "application/json; charset=utf-8",
      "content-length": String(Buffer.byteLength(text)),
      "x-oauth-scopes": SCOPES,
      ...headers,
    });
    res.end(text);
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const m = /^\/api\/([A-Za-z0-9_.]+)$/.exec(url.pathname);
    if (!m || (req.method !== "POST" && req.method !== "GET")) {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found");
      return;
    }
    const method = m[1];
    const raw = await readBody(req);
    const contentType = String(req.headers["content-type"] ?? "").split(";")[0].trim().toLowerCase();
    let args: Record<string, any> = Object.fromEntries(url.searchParams.entries());
    let isJson = false;
    try {
      if (raw.length > 0) {
        if (contentType === "application/json") {
          isJson = true;
          Object.assign(args, JSON.parse(raw.toString("utf8")));
        } else if (contentType === "multipart/form-data") {
          const form = await new Response(new Uint8Array(raw), { headers: { "content-type": String(req.headers["content-type"]) } }).formData();
          for (const [k, v] of form.entries()) args[k] = typeof v === "string" ? v : `<file ${(v as any).name ?? ""}>`;
        } else {
          Object.assign(args, parseQuery(raw.toString("utf8")));
        }
      }
    } catch {
      send(res, 200, { ok: false, error: "invalid_json" });
      return;
    }
    args = decodeArgs(args);

    const auth = String(req.headers.authorization ?? "");
    const headerToken = /^Bearer\s+(\S+)$/i.exec(auth)?.[1];
    // Slack ignores a token in a JSON body: JSON callers must use the Authorization header.
    const bodyToken = !isJson && typeof args.token === "string" ? args.token : undefined;
    const callToken = headerToken ?? bodyToken;
    delete args.token;
    const at = Date.now();

    const delay = latency.get(method) ?? latency.get("*") ?? 0;
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));

    const fail = (status: number, error: string | undefined, body: unknown, headers?: Record<string, string>, injected = false) => {
      requests.push({ method, args, at, token: callToken, status, ok: false, error, injected });
      send(res, status, body, headers);
    };

    const handler = methods[method];
    if (!handler) return fail(200, "unknown_method", { ok: false, error: "unknown_method", req_method: method });

    const rule = failRules.find((r) => r.left > 0 && (r.method === "*" || r.method === method));
    let loseAnswer = false;
    if (rule && "lostAnswer" in rule.mode) {
      rule.left -= 1;
      failRules = failRules.filter((r) => r.left > 0);
      loseAnswer = true;
    } else if (rule) {
      rule.left -= 1;
      failRules = failRules.filter((r) => r.left > 0);
      const mode = rule.mode as Exclude<FailMode, { lostAnswer: true }>;
      if ("okFalse" in mode) return fail(200, mode.okFalse, { ok: false, error: mode.okFalse }, {}, true);
      if (mode.status === 429) {
        return fail(429, "ratelimited", { ok: false, error: "ratelimited" }, { "retry-after": String(mode.retryAfterSec) }, true);
      }
      return fail(500, "internal_error", { ok: false, error: "internal_error" }, {}, true);
    }

    if (method !== "api.test") {
      if (!callToken) return fail(200, "not_authed", { ok: false, error: "not_authed" });
      if (callToken !== token) return fail(200, "invalid_auth", { ok: false, error: "invalid_auth" });
    }

    let result: Record<string, any>;
    try {
      result = handler(args);
    } catch (e) {
      if (e instanceof SlackError) return fail(200, e.code, { ok: false, error: e.code, ...e.extra });
      throw e;
    }
    const call: SlackCall = { method, args, at, token: callToken };
    requests.push({ ...call, status: 200, ok: true, ...(loseAnswer ? { injected: true } : {}) });
    record(call);
    if (loseAnswer) {
      req.socket.destroy();
      return;
    }
    send(res, 200, { ok: true, ...result });
  };

  const sockets = new Set<import("node:net").Socket>();
  const server = http.createServer((req, res) => {
    handle(req, res).catch((err) => {
      if (!res.headersSent) send(res, 500, { ok: false, error: "fatal_error", detail: String(err?.stack ?? err) });
      else res.destroy();
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  const fake: FakeSlack = {
    apiUrl: `http://127.0.0.1:${port}/api/`,
    calls,
    requests,
    messages,
    reactions,
    statuses,
    ephemerals,
    views,
    users,
    botUserId,
    botId,
    teamId,
    appId,
    token,
    failNext(method, n, mode) {
      if (n > 0) failRules.push({ method, left: n, mode });
    },
    clearFailures() {
      failRules = [];
    },
    setLatency(method, ms) {
      if (ms > 0) latency.set(method, ms);
      else latency.delete(method);
    },
    waitFor(pred, timeoutMs = 5000) {
      const hit = calls.find(pred);
      if (hit) return Promise.resolve(hit);
      return new Promise<SlackCall>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters = waiters.filter((w) => w !== waiter);
          const seen = requests.map((r) => `${r.method}${r.ok ? "" : `(${r.status} ${r.error})`}`).join(", ");
          reject(new Error(`fake Slack: no matching call within ${timeoutMs} ms; requests so far: [${seen}]`));
        }, timeoutMs);
        const waiter = {
          pred,
          resolve: (c: SlackCall) => {
            clearTimeout(timer);
            resolve(c);
          },
        };
        waiters.push(waiter);
      });
    },
    threadMessages(channel, threadTs) {
      return threadOf(channel, threadTs).map((m) => {
        const out: { ts: string; text: string; blocks?: any[]; edits: number; user?: string } = {
          ts: m.ts,
          text: m.text,
          edits: m.edits,
        };
        if (m.blocks) out.blocks = m.blocks;
        if (m.user) out.user = m.user;
        return out;
      });
    },
    reactionsOn(channel, ts) {
      return [...(currentReactions.get(key(channel, ts)) ?? [])];
    },
    seedMessage(s) {
      const ts = s.ts ?? nextTs();
      const m: SlackMessage = { channel: s.channel, ts, text: s.text, edits: 0, user: s.user ?? DEFAULT_USER_ID };
      if (s.thread_ts) m.thread_ts = s.thread_ts;
      messages.set(key(s.channel, ts), m);
      return ts;
    },
    reset() {
      calls.length = 0;
      requests.length = 0;
      messages.clear();
      reactions.length = 0;
      currentReactions.clear();
      statuses.length = 0;
      ephemerals.length = 0;
      views.length = 0;
      exchanged.clear();
      failRules = [];
      latency = new Map();
    },
    close() {
      waiters = [];
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
  };
  return fake;
}

function decodeArgs(args: Record<string, any>): Record<string, any> {
  const out: Record<string, any> = {};
  for (const [k, v] of Object.entries(args)) {
    const value = Array.isArray(v) && typeof v[0] === "string" && !JSON_FIELDS.has(k) ? v[v.length - 1] : v;
    if (JSON_FIELDS.has(k) && typeof value === "string") {
      try {
        out[k] = JSON.parse(value);
      } catch {
        out[k] = value; // handlers report it as invalid
      }
    } else {
      out[k] = value;
    }
  }
  return out;
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

/** Block Kit checks Slack enforces that real code trips over (limits from the Block Kit reference). */
function validateBlocks(blocks: any[]): string[] {
  const errors: string[] = [];
  if (blocks.length > 50) errors.push("no more than 50 items allowed [json-pointer:/blocks]");
  blocks.forEach((b, i) => {
    const at = `[json-pointer:/blocks/${i}`;
    if (!b || typeof b !== "object" || typeof b.type !== "string") {
      errors.push(`missing required field: type ${at}]`);
      return;
    }
    if (b.block_id !== undefined && String(b.block_id).length > 255) errors.push(`must be less than 256 characters ${at}/block_id]`);
    const textLen = (t: any) => (t && typeof t.text === "string" ? t.text.length : 0);
    switch (b.type) {
      case "section":
        if (!b.text && !b.fields) errors.push(`must provide either text or fields ${at}]`);
        if (textLen(b.text) > 3000) errors.push(`must be less than 3001 characters ${at}/text/text]`);
        if (b.text && textLen(b.text) === 0) errors.push(`must be more than 0 characters ${at}/text/text]`);
        if (Array.isArray(b.fields) && b.fields.length > 10) errors.push(`no more than 10 items allowed ${at}/fields]`);
        break;
      case "header":
        if (!b.text || b.text.type !== "plain_text") errors.push(`must be a plain_text object ${at}/text]`);
        else if (textLen(b.text) > 150) errors.push(`must be less than 151 characters ${at}/text/text]`);
        break;
      case "context":
        if (!Array.isArray(b.elements) || b.elements.length === 0) errors.push(`must provide elements ${at}/elements]`);
        else if (b.elements.length > 10) errors.push(`no more than 10 items allowed ${at}/elements]`);
        break;
      case "actions":
        if (!Array.isArray(b.elements) || b.elements.length === 0) errors.push(`must provide elements ${at}/elements]`);
        else if (b.elements.length > 25) errors.push(`no more than 25 items allowed ${at}/elements]`);
        break;
      case "markdown":
        if (typeof b.text !== "string") errors.push(`missing required field: text ${at}]`);
        else if (b.text.length > 12000) errors.push(`must be less than 12001 characters ${at}/text]`);
        break;
      default:
        break;
    }
  });
  return errors;
}

/** The checks Slack makes on a modal view (limits from the views reference). */
function validateModal(view: any): string[] {
  const errors: string[] = [];
  const plain = (t: any, max: number, at: string, required = true) => {
    if (t === undefined || t === null) {
      if (required) errors.push(`missing required field: ${at.slice(1)} [json-pointer:/view${at}]`);
      return;
    }
    if (typeof t !== "object" || t.type !== "plain_text" || typeof t.text !== "string") errors.push(`must be a plain_text object [json-pointer:/view${at}]`);
    else if (t.text.length > max) errors.push(`must be less than ${max + 1} characters [json-pointer:/view${at}/text]`);
  };
  if (view.type !== "modal") errors.push("must be modal [json-pointer:/view/type]");
  plain(view.title, 24, "/title");
  plain(view.close, 24, "/close", false);
  plain(view.submit, 24, "/submit", false);
  for (const [k, max] of [["callback_id", 255], ["external_id", 255], ["private_metadata", 3000]] as const) {
    if (view[k] !== undefined && (typeof view[k] !== "string" || view[k].length > max)) errors.push(`must be a string of at most ${max} characters [json-pointer:/view/${k}]`);
  }
  const blocks = view.blocks;
  if (!Array.isArray(blocks)) return [...errors, "missing required field: blocks [json-pointer:/view/blocks]"];
  if (blocks.length > 100) errors.push("no more than 100 items allowed [json-pointer:/view/blocks]");
  errors.push(...validateBlocks(blocks.slice(0, 50)).map((e) => e.replace("[json-pointer:/", "[json-pointer:/view/")));
  blocks.forEach((b: any, i: number) => {
    if (b?.type !== "input") return;
    const at = `/blocks/${i}`;
    if (!view.submit) errors.push(`a view with input blocks must have a submit button [json-pointer:/view/submit]`);
    plain(b.label, 2000, `${at}/label`);
    const el = b.element;
    if (!el || typeof el !== "object" || typeof el.type !== "string") return void errors.push(`missing required field: element [json-pointer:/view${at}]`);
    if (el.action_id !== undefined && String(el.action_id).length > 255) errors.push(`must be less than 256 characters [json-pointer:/view${at}/element/action_id]`);
    if (el.type === "plain_text_input") {
      for (const k of ["max_length", "min_length"]) {
        if (el[k] !== undefined && !(Number.isInteger(el[k]) && el[k] >= 0 && el[k] <= 3000)) errors.push(`must be at most 3000 [json-pointer:/view${at}/element/${k}]`);
      }
      plain(el.placeholder, 150, `${at}/element/placeholder`, false);
    }
  });
  return errors;
}

/**
 * A trigger_id as interaction payloads carry it ("<issued ms>.<n>.<hex>"): views.open takes it once, within the
 * fake's triggerTtlMs of `issuedAtMs`.
 */
export function triggerId(issuedAtMs: number = Date.now()): string {
  return `${Math.floor(issuedAtMs)}.${Math.floor(Math.random() * 1e9)}.${randomBytes(8).toString("hex")}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Events API (inbound) helpers
// ---------------------------------------------------------------------------------------------------------------

/** Slack's v0 request signature: `v0=` + hex HMAC-SHA256(secret, `v0:${timestamp}:${body}`). */
export function signSlackRequest(
  signingSecret: string,
  body: string,
  timestampSec: number = Math.floor(Date.now() / 1000),
): { "x-slack-signature": string; "x-slack-request-timestamp": string } {
  const sig = createHmac("sha256", signingSecret).update(`v0:${timestampSec}:${body}`).digest("hex");
  return { "x-slack-signature": `v0=${sig}`, "x-slack-request-timestamp": String(timestampSec) };
}

/** The opaque `event_context` Slack adds to envelopes: "4-" + base64 of a small JSON object. */
export function eventContext(eventType: string, teamId: string, appId: string, channel?: string): string {
  const o: Record<string, string> = { et: eventType, tid: teamId, aid: appId };
  if (channel) o.cid = channel;
  return `4-${Buffer.from(JSON.stringify(o)).toString("base64").replace(/=+$/, "")}`;
}

/** The `rich_text` block Slack's clients attach to a typed message (mentions become `user` elements). */
export function richTextBlocks(text: string): any[] {
  const elements: any[] = [];
  const re = /<@([UW][A-Z0-9]+)(?:\|[^>]*)?>/g;
  let last = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m.index > last) elements.push({ type: "text", text: text.slice(last, m.index) });
    elements.push({ type: "user", user_id: m[1] });
    last = m.index + m[0].length;
  }
  if (last < text.length) elements.push({ type: "text", text: text.slice(last) });
  return [
    {
      type: "rich_text",
      block_id: randomBytes(3).toString("base64url").slice(0, 4),
      elements: [{ type: "rich_text_section", elements }],
    },
  ];
}

interface EnvelopeCommon {
  teamId?: string;
  eventId?: string;
  /** The installing app (default DEFAULT_APP_ID). */
  apiAppId?: string;
  /** The app's bot user, used in `authorizations` (default DEFAULT_BOT_USER_ID). */
  botUserId?: string;
}

function envelope(event: Record<string, any>, o: EnvelopeCommon): any {
  const teamId = o.teamId ?? DEFAULT_TEAM_ID;
  const apiAppId = o.apiAppId ?? DEFAULT_APP_ID;
  return {
    token: DEFAULT_VERIFICATION_TOKEN,
    team_id: teamId,
    context_team_id: teamId,
    context_enterprise_id: null,
    api_app_id: apiAppId,
    event,
    type: "event_callback",
    event_id: o.eventId ?? slackId("Ev"),
    event_time: Math.floor(Number(event.event_ts ?? event.ts ?? Date.now() / 1000)),
    authorizations: [
      {
        enterprise_id: null,
        team_id: teamId,
        user_id: o.botUserId ?? DEFAULT_BOT_USER_ID,
        is_bot: true,
        is_enterprise_install: false,
      },
    ],
    is_ext_shared_channel: false,
    event_context: eventContext(event.type, teamId, apiAppId, event.channel),
  };
}

/**
 * An `event_callback` envelope carrying an `app_mention`. `text` is prefixed with `<@botUserId> ` unless it
 * already mentions the bot. With `thread_ts` (a mention inside a thread) the event also has `parent_user_id`.
 */
export function mentionEnvelope(o: {
  text: string;
  channel?: string;
  user?: string;
  ts?: string;
  thread_ts?: string;
  botUserId: string;
  teamId?: string;
  eventId?: string;
  apiAppId?: string;
}): any {
  const teamId = o.teamId ?? DEFAULT_TEAM_ID;
  const ts = o.ts ?? nextTs();
  const mention = `<@${o.botUserId}>`;
  const text = o.text.includes(mention) ? o.text : `${mention} ${o.text}`;
  const event: Record<string, any> = {
    user: o.user ?? DEFAULT_USER_ID,
    type: "app_mention",
    ts,
    client_msg_id: randomUUID(),
    text,
    team: teamId,
    blocks: richTextBlocks(text),
  };
  if (o.thread_ts) {
    event.thread_ts = o.thread_ts;
    event.parent_user_id = o.user ?? DEFAULT_USER_ID;
  }
  event.channel = o.channel ?? DEFAULT_CHANNEL;
  event.event_ts = ts;
  return envelope(event, o);
}

/**
 * An `event_callback` envelope carrying a `message` event (`message.channels` / `message.im` subscriptions).
 * `channelType` defaults from the channel id (D… → "im", G… → "group", else "channel"). `botId` makes it a message
 * posted by an app (adds bot_id/app_id/bot_profile). `subtype` "message_changed" / "message_deleted" produce
 * Slack's nested shapes (`message` / `previous_message`, `hidden: true`); other subtypes are set as-is.
 */
export function messageEnvelope(o: {
  text: string;
  channel: string;
  channelType?: "channel" | "im" | "group" | "mpim";
  user?: string;
  ts?: string;
  thread_ts?: string;
  teamId?: string;
  eventId?: string;
  botId?: string;
  subtype?: string;
  apiAppId?: string;
  botUserId?: string;
}): any {
  const teamId = o.teamId ?? DEFAULT_TEAM_ID;
  const channelType =
    o.channelType ?? (o.channel.startsWith("D") ? "im" : o.channel.startsWith("G") ? "group" : "channel");
  const user = o.user ?? (o.botId ? undefined : DEFAULT_USER_ID);
  const inner = (ts: string): Record<string, any> => {
    const m: Record<string, any> = { type: "message", text: o.text, ts };
    if (user) m.user = user;
    if (o.botId) {
      Object.assign(m, {
        bot_id: o.botId,
        app_id: o.apiAppId ?? DEFAULT_APP_ID,
        bot_profile: { id: o.botId, app_id: o.apiAppId ?? DEFAULT_APP_ID, name: "bot", deleted: false, team_id: teamId },
      });
    } else {
      m.client_msg_id = randomUUID();
    }
    m.blocks = richTextBlocks(o.text);
    m.team = teamId;
    if (o.thread_ts) {
      m.thread_ts = o.thread_ts;
      m.parent_user_id = user ?? DEFAULT_USER_ID;
    }
    return m;
  };

  let event: Record<string, any>;
  if (o.subtype === "message_changed") {
    const origTs = o.ts ?? nextTs();
    const eventTs = nextTs();
    const message = { ...inner(origTs), edited: { user: user ?? DEFAULT_USER_ID, ts: eventTs } };
    const previous: Record<string, any> = { ...inner(origTs), text: "(previous text)" };
    previous.blocks = richTextBlocks(previous.text);
    event = {
      type: "message",
      subtype: "message_changed",
      message,
      previous_message: previous,
      channel: o.channel,
      hidden: true,
      ts: eventTs,
      event_ts: eventTs,
      channel_type: channelType,
    };
  } else if (o.subtype === "message_deleted") {
    const origTs = o.ts ?? nextTs();
    const eventTs = nextTs();
    event = {
      type: "message",
      subtype: "message_deleted",
      previous_message: inner(origTs),
      channel: o.channel,
      hidden: true,
      deleted_ts: origTs,
      event_ts: eventTs,
      ts: eventTs,
      channel_type: channelType,
    };
  } else {
    const ts = o.ts ?? nextTs();
    event = inner(ts);
    if (o.subtype) event.subtype = o.subtype;
    event.channel = o.channel;
    event.event_ts = ts;
    event.channel_type = channelType;
  }
  return envelope(event, o);
}

/** The challenge Slack sends when the request URL is saved; the app must echo `challenge`. */
export function urlVerification(challenge: string): any {
  return { token: DEFAULT_VERIFICATION_TOKEN, challenge, type: "url_verification" };
}

/**
 * POSTs `envelope` as JSON to `url` the way Slack does: signed (v0), `content-type: application/json`, Slack's
 * user agent, and on retries `x-slack-retry-num` / `x-slack-retry-reason` (default reason "http_timeout").
 * `timestampSec` signs with (and sends) that time, e.g. 10 minutes ago for a stale request; `badSignature` signs
 * with the wrong secret.
 */
export async function postSlackEvent(
  url: string,
  signingSecret: string,
  envelope: any,
  opts: { retryNum?: number; retryReason?: string; timestampSec?: number; badSignature?: boolean } = {},
): Promise<{ status: number; body: string; ms: number }> {
  const body = typeof envelope === "string" ? envelope : JSON.stringify(envelope);
  const secret = opts.badSignature ? `${signingSecret}-wrong` : signingSecret;
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "user-agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
    accept: "*/*",
    ...signSlackRequest(secret, body, opts.timestampSec),
  };
  if (opts.retryNum !== undefined) {
    headers["x-slack-retry-num"] = String(opts.retryNum);
    headers["x-slack-retry-reason"] = opts.retryReason ?? "http_timeout";
  }
  const started = performance.now();
  const res = await fetch(url, { method: "POST", headers, body });
  const text = await res.text();
  return { status: res.status, body: text, ms: Math.round(performance.now() - started) };
}

/** The server variables that point Deckhand's Slack integration at this fake (plus the signing secret the test signs with). */
export function slackBotEnv(fake: FakeSlack, signingSecret: string): Record<string, string> {
  return { SLACK_SIGNING_SECRET: signingSecret, SLACK_BOT_TOKEN: fake.token, SLACK_API_URL: fake.apiUrl, SLACK_BOT_ID: fake.botId, SLACK_BOT_USER_ID: fake.botUserId };
}

// ---------------------------------------------------------------------------------------------------------------
// Interactivity (inbound): block_actions, as Slack posts them to the app's Request URL
// ---------------------------------------------------------------------------------------------------------------

/**
 * A `block_actions` payload for a click on a button of a bot message, in Slack's shape (user, team, channel,
 * container, the message with its blocks, actions[], response_url).
 */
export function blockActionsPayload(o: {
  user?: string;
  teamId?: string;
  channel: string;
  message: { ts: string; thread_ts?: string; text?: string; blocks?: any[] };
  button: { action_id: string; block_id?: string; value: string; text?: string };
}): any {
  const teamId = o.teamId ?? DEFAULT_TEAM_ID;
  const user = o.user ?? DEFAULT_USER_ID;
  return {
    type: "block_actions",
    user: { id: user, username: "ada", name: "ada", team_id: teamId },
    api_app_id: DEFAULT_APP_ID,
    token: DEFAULT_VERIFICATION_TOKEN,
    container: { type: "message", message_ts: o.message.ts, channel_id: o.channel, is_ephemeral: false, ...(o.message.thread_ts ? { thread_ts: o.message.thread_ts } : {}) },
    trigger_id: triggerId(),
    team: { id: teamId, domain: DEFAULT_TEAM_DOMAIN },
    enterprise: null,
    is_enterprise_install: false,
    channel: { id: o.channel, name: "project" },
    message: { type: "message", user: DEFAULT_BOT_USER_ID, bot_id: DEFAULT_BOT_ID, text: o.message.text ?? "", ts: o.message.ts, ...(o.message.thread_ts ? { thread_ts: o.message.thread_ts } : {}), blocks: o.message.blocks ?? [] },
    state: { values: {} },
    response_url: `https://hooks.slack.com/actions/${teamId}/1/${randomBytes(12).toString("hex")}`,
    actions: [{ type: "button", action_id: o.button.action_id, block_id: o.button.block_id ?? "b", text: { type: "plain_text", text: o.button.text ?? "", emoji: true }, value: o.button.value, action_ts: `${Math.floor(Date.now() / 1000)}.000100` }],
  };
}

/** Posts an interactivity payload as Slack does: form-encoded `payload=<json>`, signed like events. */
export async function postSlackAction(url: string, signingSecret: string, payload: any): Promise<{ status: number; body: string }> {
  const body = new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", "user-agent": "Slackbot 1.0 (+https://api.slack.com/robots)", ...signSlackRequest(signingSecret, body) },
    body,
  });
  return { status: res.status, body: await res.text() };
}

/** A slash command as Slack posts it: form-encoded fields, signed like events. */
export async function postSlashCommand(
  url: string,
  signingSecret: string,
  o: { command?: string; text: string; channel?: string; user?: string; teamId?: string },
): Promise<{ status: number; body: string }> {
  const teamId = o.teamId ?? DEFAULT_TEAM_ID;
  const body = new URLSearchParams({
    token: DEFAULT_VERIFICATION_TOKEN,
    team_id: teamId,
    team_domain: DEFAULT_TEAM_DOMAIN,
    channel_id: o.channel ?? DEFAULT_CHANNEL,
    channel_name: "project",
    user_id: o.user ?? DEFAULT_USER_ID,
    user_name: "ada",
    command: o.command ?? "/deckhand",
    text: o.text,
    api_app_id: DEFAULT_APP_ID,
    is_enterprise_install: "false",
    response_url: `https://hooks.slack.com/commands/${teamId}/1/${randomBytes(12).toString("hex")}`,
    trigger_id: triggerId(),
  }).toString();
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded", ...signSlackRequest(signingSecret, body) }, body });
  return { status: res.status, body: await res.text() };
}

/** A message shortcut (`message_action`) payload: the message it was used on, who used it, where. */
export function messageShortcutPayload(o: { callbackId: string; channel: string; message: { ts: string; text: string; user?: string; thread_ts?: string }; user?: string; teamId?: string }): any {
  const teamId = o.teamId ?? DEFAULT_TEAM_ID;
  return {
    type: "message_action",
    token: DEFAULT_VERIFICATION_TOKEN,
    action_ts: `${Math.floor(Date.now() / 1000)}.000200`,
    team: { id: teamId, domain: DEFAULT_TEAM_DOMAIN },
    user: { id: o.user ?? DEFAULT_USER_ID, username: "ada", team_id: teamId, name: "ada" },
    channel: { id: o.channel, name: "project" },
    is_enterprise_install: false,
    enterprise: null,
    callback_id: o.callbackId,
    trigger_id: triggerId(),
    response_url: `https://hooks.slack.com/app/${teamId}/1/${randomBytes(12).toString("hex")}`,
    message_ts: o.message.ts,
    message: { type: "message", user: o.message.user ?? "U0OTHER001", ts: o.message.ts, text: o.message.text, ...(o.message.thread_ts ? { thread_ts: o.message.thread_ts } : {}), blocks: richTextBlocks(o.message.text) },
  };
}

/** An `app_home_opened` event envelope. */
export function appHomeOpenedEnvelope(o: { user?: string; teamId?: string }): any {
  const ts = nextTs();
  return envelope({ type: "app_home_opened", user: o.user ?? DEFAULT_USER_ID, channel: "D0HOME0001", tab: "home", event_ts: ts }, o);
}

/**
 * A `view_submission` payload: `view` (as views.open returned it, see `fake.views`) submitted by `user` with the
 * given input values, `{ [block_id]: { [action_id]: value } }` (a string becomes a plain_text_input's value; an
 * object is sent as is). `privateMetadata` replaces the view's (a replayed or tampered form).
 */
export function viewSubmissionPayload(o: { view: Record<string, any>; user?: string; teamId?: string; values: Record<string, Record<string, any>>; privateMetadata?: string }): any {
  const teamId = o.teamId ?? DEFAULT_TEAM_ID;
  const values: Record<string, Record<string, any>> = {};
  for (const [block, actions] of Object.entries(o.values)) {
    values[block] = {};
    for (const [action, v] of Object.entries(actions)) values[block][action] = typeof v === "string" || v === null ? { type: "plain_text_input", value: v } : v;
  }
  return {
    type: "view_submission",
    team: { id: teamId, domain: DEFAULT_TEAM_DOMAIN },
    user: { id: o.user ?? DEFAULT_USER_ID, username: "ada", name: "ada", team_id: teamId },
    api_app_id: DEFAULT_APP_ID,
    token: DEFAULT_VERIFICATION_TOKEN,
    trigger_id: triggerId(),
    view: { ...o.view, state: { values }, ...(o.privateMetadata !== undefined ? { private_metadata: o.privateMetadata } : {}) },
    response_urls: [],
    is_enterprise_install: false,
    enterprise: null,
  };
}
