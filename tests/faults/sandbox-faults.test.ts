/**
 * Faults inside and around the sandbox, against one real server (real sandboxes, OpenCode, relay, git):
 * a model silent for several heartbeat timeouts, OpenCode killed, the relay killed, the relay's connection
 * dropped after the backend stored a batch. Every run ends in a terminal/idle state, the Linear user is told
 * (once), and no event row is lost or duplicated.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ModelHandler } from "../fakes/model-server.ts";
import { type FakeLinear, startFakeLinear } from "../fakes/linear.ts";
import { mountLinear } from "../../src/integrations/linear/index.ts";
import { makeRepo, postgresAvailable, startTestServer, type TestServer } from "../helpers/harness.ts";
import { checkEvents, type Front, gate, sleep, startFront, until } from "./helpers.ts";
import { linearEnv, linearSession, TEAM } from "./surfaces.ts";

const database = (await postgresAvailable()) ? "postgres" : "pglite";
// Short enough to prove the point in seconds, long enough for a loaded 2-core machine (OpenCode may take seconds to answer a health check).
const HEARTBEAT_TIMEOUT_S = 15;

describe(`sandbox and relay faults (${database})`, () => {
  let srv: TestServer;
  let front: Front;
  let fake: FakeLinear;
  const holds = new Map<string, ReturnType<typeof gate>>();
  /** Prompts with HOLD:<name> wait for holds.get(name) before the agent writes a file. */
  const handler: ModelHandler = async (req) => {
    const first = req.userTexts[0] ?? "";
    const name = /HOLD:(\w+)/.exec(first)?.[1];
    if (req.lastRole === "tool") return { text: `Done with ${name ?? "it"}.` };
    if (name && holds.has(name)) await holds.get(name)!.p;
    return { toolCalls: [{ name: "write", arguments: { filePath: `${name ?? "file"}.txt`, content: `${name}\n` } }] };
  };
  const hold = (name: string) => {
    const g = gate();
    holds.set(name, g);
    return g;
  };
  const modelSaw = (name: string) => until(`the model to get the ${name} prompt`, () => srv.model.requests.some((r) => (r.userTexts[0] ?? "").includes(`HOLD:${name}`)), 120_000);
  const start = async (prompt: string) => {
    const r = await srv.api("POST", "/api/runs", { prompt, repo: "demo" });
    expect(r.status).toBe(201);
    return r.body.id as string;
  };
  const sandboxOf = async (runId: string) => {
    const run = await until("the run's sandbox", async () => (await srv.deckhand.store.get(runId))?.sandboxId, 60_000);
    return (await srv.deckhand.provider.get(run))!;
  };
  const integrity = async (runId: string) => {
    const run = (await srv.deckhand.store.get(runId))!;
    return checkEvents(await srv.deckhand.store.events(runId, 0, 1_000_000), run.lastEventSeq);
  };

  beforeAll(async () => {
    fake = await startFakeLinear();
    fake.addTeam(TEAM);
    front = await startFront();
    srv = await startTestServer({
      database,
      handler,
      repos: { demo: makeRepo({ "README.md": "# demo\n" }).bare },
      env: {
        // The relay talks to the backend through the front, which can drop connections. An isolated local sandbox
        // reaches the backend only through its Unix-socket channel, which the front cannot sit in: these sandboxes
        // share the host's network so that their relay uses PUBLIC_URL (isolation has its own suite:
        // tests/sandbox/hostile-sandbox.test.ts and tests/e2e/hostile-agent.test.ts).
        PUBLIC_URL: front.url,
        LOCAL_SANDBOX_NETWORK: "host",
        HEARTBEAT_INTERVAL_SECONDS: "1",
        HEARTBEAT_TIMEOUT_SECONDS: String(HEARTBEAT_TIMEOUT_S),
        DELIVERY_MAX_ATTEMPTS: "3",
        RETRY_BASE_SECONDS: "1",
        ...linearEnv(fake),
      },
      mount: (d) => mountLinear(d),
    });
    front.backends.push(srv.url);
  });
  afterAll(async () => {
    for (const g of holds.values()) g.open();
    await srv?.close();
    await front?.close();
    await fake?.close();
  });

  it(`never fails a run whose model is silent for 2× the heartbeat timeout while heartbeats flow`, async () => {
    const g = hold("silent");
    const id = await start("HOLD:silent write a file");
    await modelSaw("silent");
    const t0 = Date.now();
    const beats: number[] = [];
    while (Date.now() - t0 < 2 * HEARTBEAT_TIMEOUT_S * 1000) {
      const run = (await srv.deckhand.store.get(id))!;
      expect(run.status, run.statusReason ?? "").toBe("running");
      if (run.lastHeartbeatAt) beats.push(run.lastHeartbeatAt.getTime());
      await sleep(1000);
    }
    // The model said nothing all along (one request, unanswered), yet heartbeats kept coming.
    expect(srv.model.requests.filter((r) => (r.userTexts[0] ?? "").includes("HOLD:silent"))).toHaveLength(1);
    expect(new Set(beats).size).toBeGreaterThanOrEqual(5); // heartbeats kept arriving (one a second when the machine is quiet)
    g.open();
    const done = await srv.waitFor(id, ["idle", "failed"], 60_000);
    expect(done.status, done.reason).toBe("idle");
    expect(done.result.filesChanged).toEqual([{ path: "silent.txt", additions: 1, deletions: 0 }]);
    const ev = await integrity(id);
    expect(ev.gaps).toEqual([]);
    expect(ev.count).toBe(ev.lastEventSeq);
  }, 120_000);

  it("OpenCode killed mid-run: the run fails with the reason and the Linear user is told once, within 60 s", async () => {
    hold("killoc");
    const s = linearSession(fake, "HOLD:killoc please");
    expect((await s.deliver(srv.url)).status).toBe(200);
    await modelSaw("killoc");
    const run = await until("the Linear run", async () => (await srv.deckhand.store.list({ source: "linear" })).find((r) => (r.sourceRef as any).agentSessionId === s.sessionId));
    const sb = await sandboxOf(run.id);
    const killedAt = Date.now();
    const k = await sb.exec(["/bin/sh", "-c", `kill -9 "$(cat ${sb.paths.control}/opencode.pid)"`]);
    expect(k.exitCode, k.stderr).toBe(0);
    const failed = await srv.waitFor(run.id, ["failed", "idle", "closed"], 60_000);
    const failedMs = Date.now() - killedAt;
    expect(failed.status).toBe("failed");
    expect(failed.failureCode).toBe("agent_died");
    expect(failed.reason).toMatch(/The agent process \(OpenCode\) stopped unexpectedly/);
    const told = await until("the error activity", () => s.activities().find((a) => a.content.type === "error"), 60_000);
    const toldMs = told.at - killedAt;
    console.log(`[faults] OpenCode killed → run failed in ${failedMs} ms, Linear user told in ${toldMs} ms (goal ≤ 60 s)`);
    expect(toldMs).toBeLessThan(60_000);
    expect(told.content.body).toMatch(/OpenCode/);
    await sleep(1500);
    expect(s.activities().filter((a) => a.content.type === "error")).toHaveLength(1);
    const ev = await integrity(run.id);
    expect(ev.gaps).toEqual([]);
    expect(ev.types["deckhand.opencode_exited"]).toBe(1);
    // The sandbox of the failed run is released.
    await until("the sandbox destroyed", async () => !(await srv.deckhand.provider.get(run.sandboxId!)), 30_000);
  }, 120_000);

  it("the agent deletes .git: delivery is retried with a growing pause, then the run fails with the reason", async () => {
    hold("nogit");
    const id = await start("HOLD:nogit write a file");
    await modelSaw("nogit");
    const sb = await sandboxOf(id);
    // What a hostile (or clumsy) agent can do: the repository is gone when the result is collected.
    const rm = await sb.exec(["rm", "-rf", ".git"], { cwd: sb.paths.repo });
    expect(rm.exitCode, rm.stderr).toBe(0);
    const idleAt = Date.now();
    holds.get("nogit")!.open();
    const failed = await srv.waitFor(id, ["failed", "idle", "closed"], 90_000);
    expect(failed.status).toBe("failed");
    expect(failed.failureCode).toBe("delivery_failed");
    expect(failed.reason).toMatch(/^Collecting and pushing the result failed 3 times; giving up\. Last error: git add -A failed: .*not a git repository/);
    // Three tries with pauses of about 1 s and 2 s in between (before: ~120 tries a second, forever).
    const row = (await srv.deckhand.store.get(id))!;
    const spentMs = row.finishedAt!.getTime() - idleAt;
    console.log(`[faults] .git deleted → run failed after 3 delivery tries, ${spentMs} ms after the agent was released`);
  }, 150_000);

  it("relay killed (-9) mid-run: it is started again, resumes its outbox, and the run finishes with every event once", async () => {
    const g = hold("killrelay");
    const id = await start("HOLD:killrelay write a file");
    await modelSaw("killrelay");
    const sb = await sandboxOf(id);
    const before = (await srv.deckhand.store.get(id))!.lastEventSeq;
    const k = await sb.exec([
      "/bin/sh",
      "-c",
      'for p in /proc/[0-9]*; do if tr "\\0" " " < $p/cmdline 2>/dev/null | grep -q "relay[.]mjs"; then kill -9 ${p#/proc/} && echo ${p#/proc/}; fi; done',
    ]);
    expect(k.stdout.trim(), k.stderr).toMatch(/^\d+$/);
    g.open(); // the agent works on while the relay is down
    const done = await srv.waitFor(id, ["idle", "failed"], 90_000);
    expect(done.status, done.reason).toBe("idle");
    expect(done.result.filesChanged).toEqual([{ path: "killrelay.txt", additions: 1, deletions: 0 }]);
    const ev = await integrity(id);
    expect(ev.gaps).toEqual([]);
    expect(ev.count).toBe(ev.lastEventSeq);
    expect(ev.lastEventSeq).toBeGreaterThan(before);
    expect(ev.types["deckhand.relay_started"], JSON.stringify(ev.types)).toBe(2); // the original and the restarted relay
    expect(ev.types["deckhand.agent_idle"]).toBe(1);
    const events = await srv.deckhand.store.events(id, 0, 100_000);
    expect(events.find((e) => e.type === "deckhand.relay_started" && (e.data as any).restarted)).toBeTruthy();
  }, 120_000);

  it("relay connection dropped after the backend stored a batch: the batch is resent, stored once, nothing lost", async () => {
    // The first three event batches are stored by the server, then the connection is cut before the answer.
    front.dropAfterAnswer = (req) => req.method === "POST" && /\/events$/.test(req.url ?? "") && front.dropped.length < 3;
    try {
      const id = await start("HOLD:none write a file");
      const done = await srv.waitFor(id, ["idle", "failed"], 90_000);
      expect(done.status, done.reason).toBe("idle");
      expect(front.dropped.length).toBe(3);
      const ev = await integrity(id);
      expect(ev.gaps).toEqual([]);
      expect(ev.count).toBe(ev.lastEventSeq);
      expect(ev.types["deckhand.prompt_delivered"]).toBe(1);
      expect(ev.types["deckhand.agent_idle"]).toBe(1);
      expect(ev.types["deckhand.opencode_ready"]).toBe(1);
      console.log(`[faults] ${front.dropped.length} event batches lost their acknowledgement; ${ev.count} events stored once each`);
    } finally {
      front.dropAfterAnswer = null;
    }
  }, 120_000);
});
