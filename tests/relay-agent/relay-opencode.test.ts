/**
 * The BUILT relay bundle (`node relay.mjs`) between REAL `opencode serve` (driven by the scripted model server)
 * and a fake backend receiver. OpenCode is started the way the backend starts it in a sandbox:
 *   sh -c 'echo $$ > pidfile; exec opencode serve --port P --hostname 127.0.0.1 --pure' > logfile 2>&1 &
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { buildRelayBundle } from "../../src/relay/agent/build.ts";
import { RELAY_EVENT } from "../../src/relay/protocol.ts";
import { startModelServer, type ModelServer } from "../fakes/model-server.ts";
import { percentile, seqReport, startFakeBackend, type FakeBackend } from "./fake-backend.ts";
import { freePort } from "../helpers/harness.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const OPENCODE_BIN = path.join(ROOT, "node_modules/opencode-linux-x64/bin/opencode");
const PASSWORD = "relay-test-pw";


describe("relay bundle with real opencode serve", () => {
  let tmp: string;
  let project: string;
  let stateDir: string;
  let bundle: string;
  let bundleBytes = 0;
  let model: ModelServer;
  let backend: FakeBackend;
  let relay: ChildProcess | undefined;
  let relayLog = "";
  let relayExit: Promise<number | null>;
  let opencodePid = 0;
  let relayEnv: NodeJS.ProcessEnv;
  let sessionId = "";
  let outage = { from: 0, to: 0 };

  // Model script: prompt 1 writes hello.txt; prompt 2 is held until released; the follow-up gets its own answer.
  const LONG = "Start the long task";
  const FOLLOW = "Also mention the follow-up note";
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));

  function startRelay(): void {
    relayLog = "";
    relay = spawn(process.execPath, [bundle], { env: relayEnv, stdio: ["ignore", "ignore", "pipe"] });
    relay.stderr!.on("data", (d) => (relayLog += d.toString()));
    const p = relay;
    relayExit = new Promise((r) => p.once("exit", (code) => r(code)));
  }

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "deckhand-relay-"));
    project = path.join(tmp, "project");
    stateDir = path.join(tmp, "relay-state");
    fs.mkdirSync(project);
    execFileSync("git", ["init", "-q"], { cwd: project });
    fs.writeFileSync(path.join(project, "README.md"), "# test\n");
    execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "init", "--allow-empty"], { cwd: project });

    bundle = path.join(tmp, "relay.mjs");
    const [built, m, b, port] = await Promise.all([
      buildRelayBundle(bundle),
      startModelServer({
        handler: async (req) => {
          if (req.userTexts.includes(FOLLOW)) return { text: "Handled the follow-up too." };
          if (req.userTexts.includes(LONG)) {
            await gate;
            return { text: "First part done." };
          }
          if (req.lastRole === "tool") return { text: "Wrote hello.txt." };
          return { toolCalls: [{ name: "write", arguments: { filePath: "hello.txt", content: "hi\n" } }] };
        },
      }),
      startFakeBackend(),
      freePort(),
    ]);
    bundleBytes = built.bytes;
    model = m;
    backend = b;

    const config = {
      provider: {
        local: {
          npm: "@ai-sdk/openai-compatible",
          options: { baseURL: model.baseUrl, apiKey: "x" },
          models: { m: { tool_call: true } },
        },
      },
      model: "local/m",
      permission: "allow",
    };
    const ocEnv: NodeJS.ProcessEnv = {
      ...process.env,
      XDG_CONFIG_HOME: path.join(tmp, "xdg/config"),
      XDG_DATA_HOME: path.join(tmp, "xdg/data"),
      XDG_STATE_HOME: path.join(tmp, "xdg/state"),
      XDG_CACHE_HOME: path.join(tmp, "xdg/cache"),
      OPENCODE_DISABLE_MODELS_FETCH: "1",
      OPENCODE_DISABLE_AUTOUPDATE: "1",
      OPENCODE_DISABLE_LSP_DOWNLOAD: "1",
      OPENCODE_DISABLE_SHARE: "1",
      OPENCODE_SERVER_PASSWORD: PASSWORD,
      OPENCODE_CONFIG_CONTENT: JSON.stringify(config),
      OC_BIN: OPENCODE_BIN,
      OC_PORT: String(port),
      OC_PIDFILE: path.join(tmp, "opencode.pid"),
      OC_LOG: path.join(tmp, "opencode.log"),
    };
    delete ocEnv.OPENCODE_CONFIG;
    delete ocEnv.OPENCODE_PERMISSION;

    relayEnv = {
      PATH: process.env.PATH,
      DECKHAND_RUN_ID: backend.runId,
      DECKHAND_BACKEND_URL: backend.url,
      DECKHAND_RELAY_TOKEN: backend.token,
      OPENCODE_URL: `http://127.0.0.1:${port}`,
      OPENCODE_SERVER_PASSWORD: PASSWORD,
      OPENCODE_DIRECTORY: project,
      OPENCODE_PID_FILE: ocEnv.OC_PIDFILE,
      OPENCODE_LOG_FILE: ocEnv.OC_LOG,
      DECKHAND_STATE_DIR: stateDir,
      DECKHAND_HEARTBEAT_MS: "300",
    };
    // The relay starts first and waits for OpenCode, as in a sandbox where both are launched together.
    startRelay();
    execFileSync(
      "sh",
      ["-c", `cd "$0" && sh -c 'echo $$ > "$OC_PIDFILE"; exec "$OC_BIN" serve --port "$OC_PORT" --hostname 127.0.0.1 --pure' > "$OC_LOG" 2>&1 &`, project],
      { env: ocEnv, stdio: "ignore" },
    );
    const ready = await backend.waitFor("opencode_ready", () => backend.ofType(RELAY_EVENT.opencodeReady)[0], 75_000);
    sessionId = String(ready.data.sessionId);
    opencodePid = Number(fs.readFileSync(ocEnv.OC_PIDFILE!, "utf8").trim());
  }, 90_000);

  afterAll(async () => {
    release?.();
    if (relay && relay.exitCode === null) relay.kill("SIGKILL");
    try {
      if (opencodePid) process.kill(opencodePid, "SIGKILL");
    } catch {
      /* already gone */
    }
    await Promise.all([model?.close(), backend?.close()]);
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  const dumpOnFail = (fn: () => Promise<void>) => async () => {
    try {
      await fn();
    } catch (err) {
      console.log("relay stderr:\n" + relayLog.split("\n").slice(-40).join("\n"));
      throw err;
    }
  };

  it("starts: relay_started first, then opencode_ready with the session; the bundle is small", () => {
    const evs = backend.ordered();
    expect(evs[0]).toMatchObject({ seq: 1, type: RELAY_EVENT.started });
    expect(sessionId).toMatch(/^ses_/);
    expect(bundleBytes).toBeLessThan(100_000);
    console.log(`relay bundle: ${bundleBytes} bytes`);
  });

  it(
    "prompt 1 writes the file; events survive a backend outage (500s) with no gap and no duplicate; agent_idle 1",
    dumpOnFail(async () => {
      backend.failEvents = 500;
      outage.from = Date.now();
      const seq = backend.addCommand("prompt", "Create hello.txt");
      expect(seq).toBe(1);
      // Hold the outage until OpenCode is well into the turn (the tool call has been requested).
      await backend.waitFor("model request", () => model.requests.length >= 1, 45_000);
      await new Promise((r) => setTimeout(r, 800));
      const failed = backend.requests.filter((r) => r.path === "/events" && r.status === 500).length;
      expect(failed).toBeGreaterThan(0);
      backend.failEvents = undefined;
      outage.to = Date.now();

      const idle = await backend.waitFor("agent_idle 1", () => backend.ofType(RELAY_EVENT.agentIdle)[0], 45_000);
      expect(idle.data).toEqual({ inputSeq: 1 });
      expect(fs.readFileSync(path.join(project, "hello.txt"), "utf8")).toBe("hi\n");

      const evs = backend.ordered();
      const delivered = backend.ofType(RELAY_EVENT.promptDelivered)[0]!;
      expect(delivered.data).toEqual({ inputSeq: 1 });
      expect(backend.commandAcks).toContain(1);
      const tool = evs.find((e) => e.type === "message.part.updated" && (e.data as any).part?.state?.status === "completed");
      expect((tool!.data as any).part.tool).toBe("write");
      const texts = evs.filter((e) => e.type === "message.part.updated" && (e.data as any).part?.type === "text").map((e) => (e.data as any).part.text);
      expect(texts).toContain("Wrote hello.txt.");
      expect(evs.some((e) => e.type === "message.part.delta" || e.type === "server.heartbeat" || e.type === "file.watcher.updated")).toBe(false);
      expect(evs.findIndex((e) => e.type === "session.idle")).toBeLessThan(evs.indexOf(idle));
      expect(delivered.seq).toBeLessThan(idle.seq);

      const rep = seqReport(backend);
      expect(rep.gaps).toEqual([]);
      expect(backend.conflicts).toEqual([]);
      expect(backend.received).toBe(rep.distinct); // a 500 stores nothing, so nothing was sent twice
      console.log(`after outage: ${rep.distinct} events, ${failed} failed POSTs, rows=${backend.received}`);
    }),
    90_000,
  );

  it(
    "a relay killed and restarted continues the same session and sequence: no gap, no reused seq",
    dumpOnFail(async () => {
      await new Promise((r) => setTimeout(r, 300)); // let trailing events (session.updated, diff) arrive
      const before = seqReport(backend).max;
      // A second relay on the same state dir would reuse seqs: it refuses to start while the first is alive.
      const second = spawn(process.execPath, [bundle], { env: relayEnv, stdio: ["ignore", "ignore", "pipe"] });
      let secondLog = "";
      second.stderr!.on("data", (d) => (secondLog += d.toString()));
      expect(await new Promise((r) => second.once("exit", r))).toBe(1);
      expect(secondLog).toMatch(/another relay/);
      relay!.kill("SIGKILL");
      await relayExit;
      startRelay();
      const ready = await backend.waitFor("second opencode_ready", () => backend.ofType(RELAY_EVENT.opencodeReady)[1], 40_000);
      expect(ready.data).toEqual({ sessionId, reused: true });
      const started = backend.ofType(RELAY_EVENT.started)[1]!;
      expect(started.seq).toBeGreaterThan(before);
      expect(started.data).toMatchObject({ restarted: true });
      const rep = seqReport(backend);
      expect(rep.gaps).toEqual([]);
      expect(backend.conflicts).toEqual([]);
      // command 1 is not applied again
      await new Promise((r) => setTimeout(r, 300));
      expect(backend.ofType(RELAY_EVENT.promptDelivered)).toHaveLength(1);
    }),
    90_000,
  );

  it(
    "a follow-up prompt while busy reaches the model; one agent_idle for the latest input",
    dumpOnFail(async () => {
      const reqFrom = model.requests.length;
      const s2 = backend.addCommand("prompt", LONG);
      await backend.waitFor("held model request", () => model.requests.slice(reqFrom).some((r) => r.userTexts.includes(LONG)), 40_000);
      const s3 = backend.addCommand("prompt", FOLLOW);
      await backend.waitFor("follow-up delivered", () => backend.ofType(RELAY_EVENT.promptDelivered).find((e) => e.data.inputSeq === s3), 10_000);
      const hb = backend.heartbeats.length;
      await backend.waitFor("busy heartbeat", () => backend.heartbeats.slice(hb).find((h) => h.busy && h.opencodeAlive), 5_000);
      expect(backend.ofType(RELAY_EVENT.agentIdle).filter((e) => (e.data.inputSeq as number) > 1)).toEqual([]);
      release();
      const idle = await backend.waitFor("agent_idle 3", () => backend.ofType(RELAY_EVENT.agentIdle).find((e) => e.data.inputSeq === s3), 45_000);
      expect(idle.data).toEqual({ inputSeq: s3 });
      const later = model.requests.slice(reqFrom).find((r) => r.userTexts.includes(FOLLOW));
      expect(later?.userTexts).toEqual(expect.arrayContaining([LONG, FOLLOW]));
      expect(backend.ofType(RELAY_EVENT.agentIdle).find((e) => e.data.inputSeq === s2)).toBeUndefined();
      const texts = backend.ordered().filter((e) => e.type === "message.part.updated" && (e.data as any).part?.type === "text").map((e) => (e.data as any).part.text);
      expect(texts).toContain("Handled the follow-up too.");
      await new Promise((r) => setTimeout(r, 500)); // a repeated idle would show up here
      expect(backend.ofType(RELAY_EVENT.agentIdle).filter((e) => e.data.inputSeq === s3)).toHaveLength(1);
    }),
    90_000,
  );

  it(
    "killing opencode yields opencode_exited once and heartbeats with opencodeAlive=false",
    dumpOnFail(async () => {
      expect(backend.heartbeats.at(-1)?.opencodeAlive).toBe(true);
      process.kill(opencodePid, "SIGKILL");
      const exited = await backend.waitFor("opencode_exited", () => backend.ofType(RELAY_EVENT.opencodeExited)[0], 10_000);
      expect(String(exited.data.reason)).toMatch(/exited|gone/);
      const hb = backend.heartbeats.length;
      await backend.waitFor("dead heartbeat", () => backend.heartbeats.slice(hb).find((h) => !h.opencodeAlive), 5_000);
      await new Promise((r) => setTimeout(r, 700));
      expect(backend.ofType(RELAY_EVENT.opencodeExited)).toHaveLength(1);
      expect(backend.heartbeats.slice(hb).every((h) => !h.opencodeAlive)).toBe(true);
    }),
    90_000,
  );

  it(
    "shutdown: the relay flushes and exits 0; the whole run has no gap; latency report",
    dumpOnFail(async () => {
      backend.addCommand("shutdown");
      const code = await Promise.race([relayExit, new Promise((r) => setTimeout(() => r("timeout"), 10_000))]);
      expect(code).toBe(0);
      const rep = seqReport(backend);
      expect(rep.gaps).toEqual([]);
      expect(backend.conflicts).toEqual([]);
      expect(backend.ackedSeq()).toBe(rep.max);
      expect(fs.readFileSync(path.join(stateDir, "outbox.jsonl"), "utf8").trim()).toBe(`{"ackedSeq":${rep.max}}`);

      // Relay-side latency of OpenCode events (received by the relay → stored by the backend), outside the
      // outage (which ends with a retry backoff of up to 5 s). The relay's own first event pays node's fetch warm-up.
      const lat = backend
        .ordered()
        .filter((e) => !e.type.startsWith("deckhand.") && (Date.parse(e.at) < outage.from || Date.parse(e.at) > outage.to + 5_500))
        .map((e) => backend.receivedAt.get(e.seq)! - Date.parse(e.at));
      if (process.env.RELAY_TEST_DUMP) {
        for (const e of backend.ordered()) console.log(e.seq, e.type, JSON.stringify(e.data).slice(0, 160));
      }
      console.log(
        `relay latency over ${lat.length} events: p50 ${percentile(lat, 50).toFixed(1)} ms, p99 ${percentile(lat, 99).toFixed(1)} ms; ` +
          `total ${rep.max} events, ${backend.received} rows`,
      );
    }),
    90_000,
  );
});
