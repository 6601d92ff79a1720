/**
 * Two server processes on one Postgres database. Webhooks hit either (each delivered to both at once, as a
 * retrying Slack or Linear would), relays reach either through a round-robin front, and one server is killed with
 * SIGKILL mid-run. Each run executes once, each message is sent once, no event row is lost or duplicated.
 */
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/config.ts";
import { createLogger } from "../../src/log/logger.ts";
import { createSandboxProvider } from "../../src/sandbox/index.ts";
import { type FakeLinear, startFakeLinear } from "../fakes/linear.ts";
import { type ModelHandler, startModelServer, type ModelServer } from "../fakes/model-server.ts";
import { type FakeSlack, startFakeSlack } from "../fakes/slack.ts";
import { freePort, freshPostgres, postgresAvailable, tmpDir } from "../helpers/harness.ts";
import { checkEvents, type ChildServer, type Front, gate, pg, sleep, spawnServer, startFront, until } from "./helpers.ts";
import { faultServerEnv, linearSession, slackMention, slackOnce, TEAM } from "./surfaces.ts";

const hasPg = await postgresAvailable();

describe.skipIf(!hasPg)("two server processes on one database", () => {
  let db: Awaited<ReturnType<typeof freshPostgres>>;
  let sql: ReturnType<typeof pg>;
  let model: ModelServer;
  let slack: FakeSlack;
  let linear: FakeLinear;
  let front: Front;
  let env: Record<string, string>;
  const servers: ChildServer[] = [];
  const hold = gate();
  const handler: ModelHandler = async (req) => {
    const name = /HOLD:(\w+)/.exec(req.userTexts.join(" "))?.[1] ?? "file";
    if (req.lastRole === "tool") return { text: `Done with ${name}.` };
    await hold.p;
    return { toolCalls: [{ name: "write", arguments: { filePath: `${name}.txt`, content: `${name}\n` } }] };
  };

  beforeAll(async () => {
    db = await freshPostgres();
    sql = pg(db.url);
    model = await startModelServer({ handler });
    slack = await startFakeSlack();
    linear = await startFakeLinear();
    linear.addTeam(TEAM);
    front = await startFront();
    const dataDir = tmpDir("deckhand-two-");
    env = {
      // Local sandboxes live on this machine: both processes share the data directory (as they would share a volume).
      ...faultServerEnv({ dataDir, databaseUrl: db.url, modelUrl: model.baseUrl, slack, linear }),
      PUBLIC_URL: front.url,
      MAX_CONCURRENT_RUNS: "4",
    };
    const [a, b] = await Promise.all(
      ["a", "b"].map(async (n) => spawnServer({ ...env, PORT: String(await freePort()) }, path.join(dataDir, `server-${n}.log`))),
    );
    servers.push(a!, b!);
    front.backends.push(a!.url, b!.url);
  });
  afterAll(async () => {
    hold.open();
    await Promise.all(servers.map((s) => s.kill("SIGTERM")));
    const provider = await createSandboxProvider(loadConfig({ ...env, PORT: "0" }), createLogger({ level: "silent" }));
    for (const sb of await provider.list()) await provider.destroy(sb.id);
    await sql?.end();
    await db?.drop();
    await Promise.all([model?.close(), slack?.close(), linear?.close(), front?.close()]);
  });

  it("webhooks delivered to both servers start each run once; one server killed mid-run; every run finishes; every message once", async () => {
    const [a, b] = servers as [ChildServer, ChildServer];
    const mentions = [slackMention(slack, "HOLD:slackone write a file"), slackMention(slack, "HOLD:slacktwo write a file")];
    const sessions = [linearSession(linear, "HOLD:linearone write a file"), linearSession(linear, "HOLD:lineartwo write a file")];
    // Each delivery reaches both servers at the same moment (the second as Slack's retry / Linear's redelivery),
    // and Linear also sends the same event under a new delivery id.
    const acks = await Promise.all([
      ...mentions.flatMap((m) => [m.deliver(a.url), m.deliver(b.url, 1)]),
      ...sessions.flatMap((s) => [s.deliver(a.url), s.deliver(b.url), s.deliver(a.url, { newDeliveryId: true })]),
    ]);
    for (const r of acks) expect(r.status, r.body).toBe(200);
    console.log(`[faults] webhook acks (ms): ${acks.map((r) => Math.round(r.ms)).join(", ")}`);

    const all = await until("four runs working", async () => {
      const rows = await sql`select id, status, source, source_ref from runs`;
      return rows.length >= 4 && rows.every((r) => r.status === "running") ? rows : null;
    }, 90_000, 250);
    await sleep(1000);
    expect((await sql`select id from runs`).length).toBe(4); // no duplicate run from the double deliveries
    await until("every prompt at the model", () => new Set(model.requests.map((r) => /HOLD:(\w+)/.exec(r.userTexts.join(" "))?.[1])).size >= 4, 60_000);
    // Relay traffic reached both processes.
    expect(new Set(front.forwarded.map((f) => f.backend)).size).toBe(2);

    await b.kill("SIGKILL");
    hold.open();
    for (const r of all) {
      const done = await until(`run ${r.id} idle`, async () => {
        const [x] = await sql`select status, status_reason from runs where id = ${r.id}`;
        return x && ["idle", "failed", "closed"].includes(x.status) ? x : null;
      }, 90_000, 250);
      expect(done.status, done.status_reason).toBe("idle");
    }

    for (const r of all) {
      const [run] = await sql`select * from runs where id = ${r.id}`;
      const phases = (run!.phases as { phase: string }[]).map((p) => p.phase);
      expect(run!.attempts, r.id).toBe(1); // executed once: one provisioning, one sandbox
      expect(phases.filter((p) => p === "sandbox_created")).toHaveLength(1);
      const ev = checkEvents((await sql`select seq, type from run_events where run_id = ${r.id}`) as unknown as { seq: number; type: string }[], run!.last_event_seq);
      expect(ev.gaps).toEqual([]);
      expect(ev.count).toBe(run!.last_event_seq);
      expect(ev.types["deckhand.agent_idle"]).toBe(1);
    }

    await until("the outbox drained", async () => {
      const rows = await sql`select state from notifications`;
      return rows.length > 0 && rows.every((x) => x.state === "sent");
    }, 90_000, 250);
    for (const m of mentions) {
      await until("the Slack final message", () => slackOnce(m.botMessages()).finals >= 1, 30_000);
    }
    for (const s of sessions) await until("the Linear response", () => s.activities().some((x) => x.content.type === "response"), 30_000);
    await sleep(1500);
    for (const m of mentions) expect(slackOnce(m.botMessages())).toEqual({ finals: 1, duplicateKeys: [] });
    for (const s of sessions) {
      const acts = s.activities();
      expect(new Set(acts.map((x) => x.id)).size).toBe(acts.length);
      expect(acts.filter((x) => x.content.type === "response")).toHaveLength(1);
      expect(acts.filter((x) => x.content.type === "thought" && /^Starting a sandbox/.test(x.content.body))).toHaveLength(1);
    }
    expect((await sql`select count(*)::int as n from notifications where state = 'dead'`)[0]!.n).toBe(0);
    // The surviving server still answers.
    expect((await fetch(`${a.url}/healthz`)).status).toBe(200);
  }, 180_000);
});
