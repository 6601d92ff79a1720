/** Driving the fake Linear and Slack from fault tests: start a run from each surface, read what the user saw. */
import { randomUUID } from "node:crypto";
import { agentSessionCreatedPayload, type FakeLinear, postLinearWebhook } from "../fakes/linear.ts";
import { type FakeSlack, mentionEnvelope, postSlackEvent, slackBotEnv } from "../fakes/slack.ts";
import { makeRepo } from "../helpers/harness.ts";

export const LINEAR_SECRET = "linear-webhook-secret-for-fault-tests";
export const SLACK_SECRET = "slack-signing-secret-for-fault-tests";
export const TEAM = { id: "team-eng", key: "ENG", name: "Engineering" };
export const CHANNEL = "C0FAULTS01";

export function linearEnv(fake: FakeLinear, repo = "demo"): Record<string, string> {
  return { LINEAR_WEBHOOK_SECRET: LINEAR_SECRET, LINEAR_ACCESS_TOKEN: fake.token, LINEAR_API_URL: fake.apiUrl, LINEAR_TEAM_REPOS: `ENG=${repo}` };
}

export function slackEnv(fake: FakeSlack, repo = "demo"): Record<string, string> {
  return {
    ...slackBotEnv(fake, SLACK_SECRET),
        SLACK_CHANNEL_REPOS: `${CHANNEL}=${repo}`,
  };
}

let issueN = 100;

/** A Linear agent session on a new issue; the created webhook is built once so it can be delivered many times. */
export function linearSession(fake: FakeLinear, title: string, description = title) {
  const n = issueN++;
  const issue = fake.addIssue({ id: `issue-${n}-${randomUUID().slice(0, 6)}`, identifier: `ENG-${n}`, title, description, teamId: TEAM.id });
  const sessionId = randomUUID();
  fake.addSession({ id: sessionId, issueId: issue.id });
  const payload = agentSessionCreatedPayload({
    sessionId,
    issue: { id: issue.id, identifier: issue.identifier, title: issue.title, description: issue.description, teamId: issue.teamId },
    appUserId: fake.appUserId,
    organizationId: fake.organizationId,
  });
  const deliveryId = randomUUID();
  return {
    sessionId,
    issue,
    /** Deliver the created webhook to a server (same delivery id each time: a redelivery). */
    deliver: (baseUrl: string, o: { newDeliveryId?: boolean } = {}) =>
      postLinearWebhook(`${baseUrl}/linear/webhook`, LINEAR_SECRET, payload, { deliveryId: o.newDeliveryId ? randomUUID() : deliveryId }),
    activities: () => fake.activities.filter((a) => a.agentSessionId === sessionId),
  };
}

/** A Slack mention in CHANNEL (seeded in the fake so replies and edits find it). */
export function slackMention(fake: FakeSlack, text: string) {
  const env = mentionEnvelope({ text, channel: CHANNEL, botUserId: fake.botUserId });
  fake.seedMessage({ channel: CHANNEL, text: env.event.text, ts: env.event.ts });
  return {
    env,
    ts: env.event.ts as string,
    deliver: (baseUrl: string, retryNum?: number) => postSlackEvent(`${baseUrl}/slack/events`, SLACK_SECRET, env, retryNum ? { retryNum } : {}),
    /** Bot messages in the thread with their dedupe keys. */
    botMessages: () =>
      fake
        .threadMessages(CHANNEL, env.event.ts)
        .filter((m) => m.user === fake.botUserId)
        .map((m) => ({ ...m, key: fake.messages.get(`${CHANNEL}:${m.ts}`)?.metadata?.event_payload?.key as string | undefined })),
  };
}

/** No two bot posts in a Slack thread share a dedupe key; exactly one final message. */
export function slackOnce(msgs: { key?: string; text: string }[]): { finals: number; duplicateKeys: string[] } {
  const keys = msgs.map((m) => m.key ?? `nokey:${m.text}`);
  const duplicateKeys = keys.filter((k, i) => keys.indexOf(k) !== i);
  return { finals: keys.filter((k) => /:final:/.test(k)).length, duplicateKeys };
}

/** A child server's environment in the fault tests: one demo repo, fast heartbeats and watchdog, short leases, both surfaces. */
export function faultServerEnv(o: { dataDir: string; databaseUrl: string; modelUrl: string; slack: FakeSlack; linear: FakeLinear }): Record<string, string> {
  return {
    HOST: "127.0.0.1",
    DATA_DIR: o.dataDir,
    DATABASE_URL: o.databaseUrl,
    REPOS: `demo=${makeRepo({ "README.md": "# demo\n" }).bare}`,
    LLM_BASE_URL: o.modelUrl,
    LLM_MODEL: "m",
    LLM_API_KEY: "test-key",
    API_TOKEN: "test-api-token-0123456789",
    LOG_LEVEL: "info",
    HEARTBEAT_INTERVAL_SECONDS: "1",
    // A killed server restarts (probe sandbox, migrations) before the sandboxes' heartbeats are overdue, even on a busy machine.
    HEARTBEAT_TIMEOUT_SECONDS: "120",
    WATCHDOG_INTERVAL_SECONDS: "1",
    LEASE_SECONDS: "4",
    ...slackEnv(o.slack),
    ...linearEnv(o.linear),
  };
}
