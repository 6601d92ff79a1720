/**
 * Crash recovery: the server runs as a child process (`node bin/deckhand.mjs serve`) on Postgres and is killed
 * with SIGKILL mid-run, then started again. The relays' outboxes redeliver, runs in flight finish, a lease held by
 * the dead process expires and is taken over, orphaned sandboxes are reaped, and the Slack and Linear users get
 * every message once.
 */
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/config.ts";
import { createLogger } from "../../src/log/logger.ts";
import { createSandboxProvider } from "../../src/sandbox/index.ts";
import { RUN_LABEL } from "../../src/sandbox/provider.ts";
import { type FakeLinear, startFakeLinear } from "../fakes/linear.ts";
import { type ModelHandler, startModelServer, type ModelServer } from "../fakes/model-server.ts";
import { type FakeSlack, startFakeSlack } from "../fakes/slack.ts";
import { freePort, freshPostgres, postgresAvailable, tmpDir } from "../helpers/harness.ts";
import { checkEvents, type ChildServer, gate, pg, sleep, spawnServer, until } from "./helpers.ts";
import { faultServerEnv, linearSession, slackMention, slackOnce, TEAM } from "./surfaces.ts";

const hasPg = await postgresAvailable();

describe.skipIf(!hasPg)("crash recovery: kill -9 the server mid-run and start it again", () => {
  let db: Awaited<ReturnType<typeof freshPostgres>>;
  let sql: ReturnType<typeof pg>;
  let model: ModelServer;
  let slack: FakeSlack;
  let linear: FakeLinear;
  let env: Record<string, string>;
  let dataDir: string;
  let server: ChildServer | null = null;
  const holds = new Map<string, ReturnType<typeof gate>>();
  const handler: ModelHandler = async (req) => {
    const name = /HOLD:(\w+)/.exec(req.userTexts.join(" "))?.[1] ?? "file";
    if (req.lastRole === "tool") return { text: `Done with ${name}.` };
    if (holds.has(name)) await holds.get(name)!.p;
    return { toolCalls: [{ name: "write", arguments: { filePath: `${name}.txt`, content: `${name}\n` } }] };
  };
  const start = async (label: string) => {
    server = await spawnServer(env, path.join(dataDir, `server-${label}.log`));
    return server;
  };
  const runRow = async (where: (r: any) => boolean) => (await sql`select * from runs`).find(where);
  const waitStatus = async (id: string, statuses: string[], ms = 90_000) =>
    until(`run ${id} to be ${statuses.join("/")}`, async () => {
      const [r] = await sql`select status, status_reason from runs where id = ${id}`;
      return r && statuses.includes(r.status) ? r : null;
    }, ms, 200);
  const events = async (id: string) => (await sql`select seq, type, data from run_events where run_id = ${id} order by seq`) as unknown as { seq: number; type: string }[];

  beforeAll(async () => {
    db = await freshPostgres();
    sql = pg(db.url);
    model = await startModelServer({ handler });
    slack = await startFakeSlack();
    linear = await startFakeLinear();
    linear.addTeam(TEAM);
    dataDir = tmpDir("deckhand-crash-");
    env = {
      PORT: String(await freePort()),
      ...faultServerEnv({ dataDir, databaseUrl: db.url, modelUrl: model.baseUrl, slack, linear }),
    };
  });
  afterAll(async () => {
    for (const g of holds.values()) g.open();
    await server?.kill("SIGTERM");
    // Production keeps sandboxes across restarts; the test leaves none behind.
    const provider = await createSandboxProvider(loadConfig(env), createLogger({ level: "silent" }));
    for (const sb of await provider.list()) await provider.destroy(sb.id);
    await sql?.end();
    await db?.drop();
    await Promise.all([model?.close(), slack?.close(), linear?.close()]);
  });

  it("runs in flight finish after a SIGKILL and restart: no event lost or stored twice, each Slack/Linear message sent once through 500s, 429s and a lost answer, orphans reaped", async () => {
    await start("a");
    holds.set("slackcrash", gate());
    holds.set("linearcrash", gate());
    const mention = slackMention(slack, "HOLD:slackcrash please write a file");
    expect((await mention.deliver(server!.url)).status).toBe(200);
    const session = linearSession(linear, "HOLD:linearcrash write a file");
    expect((await session.deliver(server!.url)).status).toBe(200);
    const slackRun = await until("the Slack run", () => runRow((r) => r.source === "slack" && r.source_ref.messageTs === mention.ts));
    const linearRun = await until("the Linear run", () => runRow((r) => r.source === "linear" && r.source_ref.agentSessionId === session.sessionId));
    // Both agents are working (the model holds their first request) and the users have seen progress.
    await until("both prompts at the model", () => ["slackcrash", "linearcrash"].every((n) => model.requests.some((r) => r.userTexts.join(" ").includes(`HOLD:${n}`))), 150_000); // two sandboxes and two OpenCodes starting on 2 busy cores
    await until("a Slack status message", () => mention.botMessages().length > 0, 10_000);
    await until("a Linear thought", () => session.activities().length > 0, 10_000);

    await server!.kill("SIGKILL");
    const killedAt = Date.now();
    // While the server is dead the agents finish: the relays keep their events on disk and retry.
    holds.get("slackcrash")!.open();
    holds.get("linearcrash")!.open();
    // A sandbox nobody owns any more (its run is unknown): the restarted server's reaper must find and kill it.
    const provider = await createSandboxProvider(loadConfig(env), createLogger({ level: "silent" }));
    const orphan = await provider.create({ runId: "r-orphan", labels: { [RUN_LABEL]: "r-orphan" }, timeoutMs: 600_000 });
    await sleep(3000);
    // And Slack and Linear misbehave for a while after the restart: 500s, rate limits, a lost answer.
    slack.failNext("chat.postMessage", 2, { status: 429, retryAfterSec: 1 });
    slack.failNext("*", 2, { status: 500 });
    slack.failNext("chat.postMessage", 1, { lostAnswer: true });
    linear.failNext("createAgentActivity", 2, { status: 500 });
    linear.failNext("createAgentActivity", 1, { rateLimited: true, retryAfterSec: 1 });

    await start("b");
    for (const id of [slackRun.id, linearRun.id]) {
      const done = await waitStatus(id, ["idle", "failed", "closed"]);
      expect(done.status, done.status_reason).toBe("idle");
    }
    console.log(`[faults] killed mid-run; both runs idle ${Date.now() - killedAt} ms after the kill (restart included)`);

    for (const id of [slackRun.id, linearRun.id]) {
      const [run] = await sql`select * from runs where id = ${id}`;
      const ev = checkEvents(await events(id), run.last_event_seq);
      expect(ev.gaps, id).toEqual([]);
      expect(ev.count).toBe(run.last_event_seq);
      expect(ev.types["deckhand.agent_idle"]).toBe(1);
      expect(ev.types["deckhand.relay_started"]).toBe(1); // the relay itself never restarted: it only redelivered
      expect(run.attempts).toBe(1); // executed once
      expect(run.result.filesChanged).toHaveLength(1);
    }

    // Every owed message went out, once.
    await until("the outbox drained", async () => {
      const rows = await sql`select state from notifications where run_id in ${sql([slackRun.id, linearRun.id])}`;
      // Dropped: stale progress behind a final (never sent).
      return rows.length > 0 && rows.every((r) => r.state === "sent" || r.state === "dropped");
    }, 90_000); // a row the dead process had locked waits out its lock (60 s)
    const final = await until("the Slack final message", () => slackOnce(mention.botMessages()).finals === 1, 30_000);
    expect(final).toBe(true);
    expect(slackOnce(mention.botMessages()).duplicateKeys).toEqual([]);
    await until("the Linear response", () => session.activities().some((a) => a.content.type === "response"), 30_000);
    await sleep(1500);
    const acts = session.activities();
    expect(new Set(acts.map((a) => a.id)).size).toBe(acts.length);
    expect(acts.filter((a) => a.content.type === "response")).toHaveLength(1);
    // The injected failures did happen, and were retried.
    expect(slack.requests.filter((r) => r.status === 500 || r.status === 429).length).toBeGreaterThanOrEqual(3);
    expect(linear.opsNamed("createAgentActivity").filter((o) => o.status === 500)).toHaveLength(2);
    const dead = await sql`select count(*)::int as n from notifications where state = 'dead'`;
    expect(dead[0]!.n).toBe(0);

    // The reaper killed the orphan at start-up.
    await until("the orphan sandbox reaped", async () => !(await provider.list()).some((s) => s.id === orphan.id), 20_000);
    expect(fs.readFileSync(server!.logFile, "utf8")).toMatch(/sandbox reaper: killed a sandbox because its run r-orphan is unknown/);
  }, 360_000);

  it("killed while provisioning: the dead process's lease expires and the restarted server provisions again, once", async () => {
    if (!server) await start("solo"); // when run on its own
    const session = linearSession(linear, "HOLD:none write a file");
    expect((await session.deliver(server!.url)).status).toBe(200);
    // Killed as early in provisioning as we can see it: before OpenCode (and so the relay) is started, if we are quick.
    const run = await until("the run provisioning", () => runRow((r) => r.source_ref.agentSessionId === session.sessionId && r.status === "provisioning"), 30_000, 10);
    await server!.kill("SIGKILL");
    // Read after the process is gone: what it managed to record is final.
    const [atKill] = await sql`select lease_owner, lease_expires_at, phases from runs where id = ${run.id}`;
    // The relay is started right after OpenCode: before "opencode_started" is recorded, it certainly was not.
    const relayMayRun = (atKill!.phases as { phase: string }[]).some((p) => p.phase === "opencode_started");
    expect(atKill!.lease_owner).toBeTruthy();
    await start("c");
    const done = await waitStatus(run.id, ["idle", "failed"]);
    expect(done.status, done.status_reason).toBe("idle");
    const [after] = await sql`select * from runs where id = ${run.id}`;
    // Provisioned again (by the new process, once the dead one's lease expired) when no relay was started;
    // a relay that was already started simply connects to the new process. Never more than twice.
    const triedBefore = (atKill!.phases as { phase: string }[]).filter((p) => p.phase === "provision_attempt").length;
    if (!relayMayRun) {
      expect(after.attempts).toBe(triedBefore + 1);
      // ...and only after the dead process's lease had expired.
      const retried = (after.phases as { phase: string; at: string }[]).filter((p) => p.phase === "provision_attempt").at(-1)!;
      expect(new Date(retried.at).getTime()).toBeGreaterThanOrEqual(new Date(atKill!.lease_expires_at).getTime());
    } else expect([1, 2]).toContain(after.attempts);
    expect(after.lease_owner).not.toBe(atKill!.lease_owner);
    console.log(`[faults] killed while provisioning (phases: ${(atKill!.phases as { phase: string }[]).map((p) => p.phase).join(",")}); attempts: ${after.attempts}`);
    const ev = checkEvents(await events(run.id), after.last_event_seq);
    expect(ev.gaps).toEqual([]);
    expect(ev.types["deckhand.agent_idle"]).toBe(1);
    // One live sandbox for the run (an earlier attempt's is gone).
    const provider = await createSandboxProvider(loadConfig(env), createLogger({ level: "silent" }));
    expect((await provider.list({ [RUN_LABEL]: run.id })).map((s) => s.id)).toEqual([after.sandbox_id]);
    await until("the Linear response", () => session.activities().some((a) => a.content.type === "response"), 30_000);
    await sleep(1000);
    const acts = session.activities();
    expect(new Set(acts.map((a) => a.id)).size).toBe(acts.length);
    expect(acts.filter((a) => a.content.type === "response")).toHaveLength(1);
  }, 240_000);
});
