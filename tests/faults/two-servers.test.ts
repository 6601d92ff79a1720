/**
 * Two server processes on one Postgres database, each with its own DATA_DIR (two hosts, as in production).
 * Webhooks hit either (each delivered to both at once, as a retrying Slack or Linear would), relays reach either
 * through a round-robin front, and one server is killed with SIGKILL mid-run. Each run executes once; only the
 * host that created a run's sandbox acts on it; the killed host's runs are failed by the survivor with a plain
 * reason once its heartbeat stops; each message is sent once; no event row is lost or duplicated.
 */
import fs from "node:fs";
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
  const dataDirs: string[] = [];
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
    dataDirs.push(tmpDir("deckhand-two-a-"), tmpDir("deckhand-two-b-"));
    env = {
      ...faultServerEnv({ dataDir: dataDirs[0]!, databaseUrl: db.url, modelUrl: model.baseUrl, slack, linear }),
      PUBLIC_URL: front.url,
      MAX_CONCURRENT_RUNS: "4",
      HOST_HEARTBEAT_SECONDS: "1",
      HOST_DEAD_AFTER_SECONDS: "5",
    };
    // Each process is its own host: its own DATA_DIR, so it cannot see the other's sandboxes.
    const [a, b] = await Promise.all(
      dataDirs.map(async (dir, i) => spawnServer({ ...env, DATA_DIR: dir, PORT: String(await freePort()) }, path.join(dir, `server-${"ab"[i]}.log`))),
    );
    servers.push(a!, b!);
    front.backends.push(a!.url, b!.url);
  }, 320_000); // two servers starting on a busy 2-core machine
  afterAll(async () => {
    hold.open();
    await Promise.all(servers.map((s) => s.kill("SIGTERM")));
    for (const dir of dataDirs) {
      const provider = await createSandboxProvider(loadConfig({ ...env, DATA_DIR: dir, PORT: "0" }), createLogger({ level: "silent" }));
      for (const sb of await provider.list()) await provider.destroy(sb.id);
    }
    await sql?.end();
    await db?.drop();
    await Promise.all([model?.close(), slack?.close(), linear?.close(), front?.close()]);
  });

  it("webhooks delivered to both servers start each run once; one host killed mid-run; its runs fail with a plain reason, the others finish; every message once", async () => {
    const mentions = [slackMention(slack, "HOLD:slackone write a file"), slackMention(slack, "HOLD:slacktwo write a file")];
    const sessions = [linearSession(linear, "HOLD:linearone write a file"), linearSession(linear, "HOLD:lineartwo write a file")];
    // Each delivery reaches both servers at the same moment (the second as Slack's retry / Linear's redelivery),
    // and Linear also sends the same event under a new delivery id.
    const acks = await Promise.all([
      ...mentions.flatMap((m) => [m.deliver(servers[0]!.url), m.deliver(servers[1]!.url, 1)]),
      ...sessions.flatMap((s) => [s.deliver(servers[0]!.url), s.deliver(servers[1]!.url), s.deliver(servers[0]!.url, { newDeliveryId: true })]),
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
    // A local sandbox reaches only its own host, through that host's sandbox channel: never the public URL (the front).
    expect(front.forwarded.filter((f) => /^\/(relay|gateway)\//.test(f.path))).toEqual([]);

    // Which host holds which run's sandbox (each DATA_DIR keeps its host's id).
    const hostOf = dataDirs.map((d) => fs.readFileSync(path.join(d, "host-id"), "utf8").trim());
    const placed = await sql`select id, sandbox_host from runs`;
    for (const r of placed) expect(hostOf, "every local sandbox has its host recorded").toContain(r.sandbox_host);
    // Kill the host of the first run (so at least one run loses its host); the other process survives.
    const victim = hostOf.indexOf(placed[0]!.sandbox_host);
    const [a, b] = (victim === 1 ? servers : [...servers].reverse()) as [ChildServer, ChildServer];
    const lost = new Set(placed.filter((r) => r.sandbox_host === hostOf[victim]).map((r) => r.id as string));
    console.log(`[faults] runs per host: ${JSON.stringify(hostOf.map((h) => placed.filter((r) => r.sandbox_host === h).length))}; killing the host of ${lost.size}`);
    await b.kill("SIGKILL");
    const killedAt = Date.now();
    hold.open();
    for (const r of all) {
      const done = await until(`run ${r.id} settled`, async () => {
        const [x] = await sql`select status, status_reason, failure_code, sandbox_destroyed_at from runs where id = ${r.id}`;
        return x && ["idle", "failed", "closed"].includes(x.status) ? x : null;
      }, 90_000, 250);
      if (lost.has(r.id)) {
        // The survivor never touched the dead host's sandbox; it failed the run with the reason, in plain words.
        expect(done.status).toBe("failed");
        expect(done.failure_code).toBe("host_gone");
        expect(done.status_reason).toMatch(/^The Deckhand server that held this run's sandbox \(host [\w.-]+\) stopped/);
        console.log(`[faults] run on the killed host failed ${Date.now() - killedAt} ms after the kill`);
      } else {
        expect(done.status, done.status_reason).toBe("idle");
      }
    }
    // No process on the surviving host went looking for the other host's sandboxes.
    expect(fs.readFileSync(a.logFile, "utf8")).not.toMatch(/The sandbox stopped before the result could be collected/);

    for (const r of all.filter((x) => !lost.has(x.id))) {
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
      // Dropped: stale progress behind a final (never sent).
      return rows.length > 0 && rows.every((x) => x.state === "sent" || x.state === "dropped");
    }, 90_000, 250);
    const runOf = (pred: (ref: any) => boolean) => all.find((r) => pred(r.source_ref))!.id as string;
    for (const m of mentions) {
      const gone = lost.has(runOf((ref) => ref.messageTs === m.ts));
      await until("the Slack final message", () => (gone ? m.botMessages().some((x) => /:end$/.test(x.key ?? "")) : slackOnce(m.botMessages()).finals >= 1), 30_000);
    }
    for (const s of sessions) {
      const gone = lost.has(runOf((ref) => ref.agentSessionId === s.sessionId));
      await until("the Linear response", () => s.activities().some((x) => x.content.type === (gone ? "error" : "response")), 30_000);
    }
    await sleep(1500);
    for (const m of mentions) {
      const gone = lost.has(runOf((ref) => ref.messageTs === m.ts));
      expect(slackOnce(m.botMessages())).toEqual({ finals: gone ? 0 : 1, duplicateKeys: [] });
    }
    for (const s of sessions) {
      const gone = lost.has(runOf((ref) => ref.agentSessionId === s.sessionId));
      const acts = s.activities();
      expect(new Set(acts.map((x) => x.id)).size).toBe(acts.length);
      expect(acts.filter((x) => x.content.type === (gone ? "error" : "response"))).toHaveLength(1);
      if (gone) expect(acts.find((x) => x.content.type === "error")!.content.body).toMatch(/stopped, so the sandbox can no longer be reached/);
      expect(acts.filter((x) => x.content.type === "thought" && /^Starting a sandbox/.test(x.content.body))).toHaveLength(1);
    }
    expect((await sql`select count(*)::int as n from notifications where state = 'dead'`)[0]!.n).toBe(0);
    // The surviving server still answers.
    expect((await fetch(`${a.url}/healthz`)).status).toBe(200);
  }, 180_000);
});
