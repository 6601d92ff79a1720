/**
 * The built relay bundle against a scripted stand-in for `opencode serve`, for what real OpenCode cannot be made
 * to do on cue: hundreds of timestamped events (latency), an `/event` stream closing mid-turn, a lost
 * `session.idle`, permission and question asks, a failing turn, and the backend ending the run (401).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import os from "node:os";
import path from "node:path";
import { buildRelayBundle } from "../../src/relay/agent/build.ts";
import { RELAY_EVENT } from "../../src/relay/protocol.ts";
import { now, percentile, seqReport, startFakeBackend, type FakeBackend } from "./fake-backend.ts";

const PASSWORD = "fake-oc-pw";
const SID = "ses_fake1";

interface FakeOpencode {
  url: string;
  status: Record<string, { type: string }>;
  calls: { method: string; path: string; body: any }[];
  onPrompt: (text: string) => void;
  send(type: string, properties: Record<string, unknown>): void;
  dropStreams(): void;
  streams(): number;
  close(): Promise<void>;
}

async function startFakeOpencode(): Promise<FakeOpencode> {
  const clients = new Set<http.ServerResponse>();
  const sockets = new Set<Socket>();
  const auth = `Basic ${Buffer.from(`opencode:${PASSWORD}`).toString("base64")}`;
  const json = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  const fo: FakeOpencode = {
    url: "",
    status: {},
    calls: [],
    onPrompt: () => {},
    send(type, properties) {
      const line = `data: ${JSON.stringify({ id: `evt_${Math.random().toString(36).slice(2)}`, type, properties })}\n\n`;
      for (const c of clients) c.write(line);
    },
    dropStreams() {
      for (const c of clients) c.socket?.destroy();
      clients.clear();
    },
    streams: () => clients.size,
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const url = new URL(req.url ?? "/", "http://x");
    const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : undefined;
    fo.calls.push({ method: req.method!, path: url.pathname, body });
    if (req.headers.authorization !== auth) return json(res, 401, { error: "unauthorized" });
    const p = url.pathname;
    if (p === "/global/health") return json(res, 200, { healthy: true, version: "fake" });
    if (p === "/session" && req.method === "POST") return json(res, 200, { id: SID, directory: url.searchParams.get("directory") });
    if (p === `/session/${SID}` && req.method === "GET") return json(res, 200, { id: SID });
    if (p === "/session/status") return json(res, 200, fo.status);
    if (p === `/session/${SID}/prompt_async`) {
      res.writeHead(204).end();
      // Like OpenCode: the prompt becomes a user message (after 204), which the relay waits for before the next one.
      fo.send("message.updated", { sessionID: SID, info: { id: `msg_u${fo.calls.length}`, sessionID: SID, role: "user" } });
      fo.onPrompt(body.parts[0].text);
      return;
    }
    if (p === `/session/${SID}/abort`) return json(res, 200, true);
    if (/^\/permission\/[^/]+\/reply$/.test(p) || /^\/question\/[^/]+\/reject$/.test(p)) return json(res, 200, true);
    if (p === "/event") {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      res.write(`data: ${JSON.stringify({ type: "server.connected", properties: {} })}\n\n`);
      clients.add(res);
      req.socket.once("close", () => clients.delete(res));
      return;
    }
    json(res, 404, { error: `no route ${p}` });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  fo.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fo;
}

describe("relay bundle with a scripted opencode", () => {
  let tmp: string;
  let fo: FakeOpencode;
  let backend: FakeBackend;
  let relay: ChildProcess;
  let relayLog = "";
  let relayExit: Promise<number | null>;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const busy = () => {
    fo.status = { [SID]: { type: "busy" } };
    fo.send("session.status", { sessionID: SID, status: { type: "busy" } });
  };
  const idle = () => {
    fo.status = {};
    fo.send("session.status", { sessionID: SID, status: { type: "idle" } });
    fo.send("session.idle", { sessionID: SID });
  };
  const idleFor = (seq: number) => backend.ofType(RELAY_EVENT.agentIdle).find((e) => e.data.inputSeq === seq);

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "deckhand-relay-fake-"));
    const bundle = path.join(tmp, "relay.mjs");
    [fo, backend] = await Promise.all([startFakeOpencode(), startFakeBackend(), buildRelayBundle(bundle)]) as [FakeOpencode, FakeBackend, unknown];
    fs.writeFileSync(path.join(tmp, "oc.pid"), `${process.pid}\n`);
    fs.writeFileSync(path.join(tmp, "oc.log"), `opencode server listening on ${fo.url}\n`);
    relay = spawn(process.execPath, [bundle], {
      env: {
        PATH: process.env.PATH,
        DECKHAND_RUN_ID: backend.runId,
        DECKHAND_BACKEND_URL: backend.url,
        DECKHAND_RELAY_TOKEN: backend.token,
        OPENCODE_URL: fo.url,
        OPENCODE_SERVER_PASSWORD: PASSWORD,
        OPENCODE_DIRECTORY: "/work/project",
        OPENCODE_PID_FILE: path.join(tmp, "oc.pid"),
        OPENCODE_LOG_FILE: path.join(tmp, "oc.log"),
        DECKHAND_STATE_DIR: path.join(tmp, "state"),
        DECKHAND_HEARTBEAT_MS: "300",
      },
      stdio: ["ignore", "ignore", "pipe"],
    });
    relay.stderr!.on("data", (d) => (relayLog += d.toString()));
    relayExit = new Promise((r) => relay.once("exit", (code) => r(code)));
    await backend.waitFor("opencode_ready", () => backend.ofType(RELAY_EVENT.opencodeReady)[0], 10_000);
  }, 20_000);

  afterAll(async () => {
    if (relay?.exitCode === null) relay.kill("SIGKILL");
    await Promise.all([fo?.close(), backend?.close()]);
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("passes the directory and the password to OpenCode", () => {
    const create = fo.calls.find((c) => c.method === "POST" && c.path === "/session")!;
    expect(create).toBeDefined();
    expect(backend.ofType(RELAY_EVENT.opencodeReady)[0]!.data).toEqual({ sessionId: SID, reused: false });
  });

  it("forwards 600 events with low latency (OpenCode event → stored by the backend)", async () => {
    const N = 600;
    const sentAt = new Map<number, number>();
    fo.onPrompt = async () => {
      busy();
      for (let i = 0; i < N; i++) {
        // mostly spaced 0-3 ms apart, with bursts of 20 back-to-back events
        if (i % 50 >= 20) await sleep(Math.random() * 3);
        sentAt.set(i, now());
        fo.send("message.part.updated", { sessionID: SID, part: { id: `prt_${i}`, sessionID: SID, messageID: "msg_1", type: "tool", n: i } });
      }
      idle();
    };
    const seq = backend.addCommand("prompt", "go");
    await backend.waitFor("agent_idle", () => idleFor(seq), 15_000);
    const lat: number[] = [];
    for (const e of backend.ofType("message.part.updated")) {
      const n = (e.data as any).part.n as number;
      lat.push(backend.receivedAt.get(e.seq)! - sentAt.get(n)!);
    }
    expect(lat).toHaveLength(N);
    const p50 = percentile(lat, 50);
    const p99 = percentile(lat, 99);
    console.log(`latency over ${N} events: p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, max ${Math.max(...lat).toFixed(2)} ms; ` +
      `${backend.requests.filter((r) => r.path === "/events").length} POSTs`);
    // The goal is p99 <= 100 ms on loopback (measured: p50 ~3-8 ms, p99 ~12-35 ms on a quiet 2-core machine;
    // several times that when the machine is overloaded). This bound only catches a regression (e.g. a send
    // timer or per-event waits) without failing on a busy shared machine; p99 is printed above.
    expect(p50).toBeLessThan(250);
    expect(seqReport(backend).gaps).toEqual([]);
  }, 30_000);

  it("the /event stream closing mid-turn: reconnects, confirms with /session/status, agent_idle not lost", async () => {
    fo.onPrompt = () => busy();
    const before = seqReport(backend).max;
    const seq = backend.addCommand("prompt", "second");
    await backend.waitFor("delivered and busy", () =>
      backend.ofType(RELAY_EVENT.promptDelivered).some((e) => e.data.inputSeq === seq) &&
      backend.ofType("session.status").some((e) => e.seq > before && (e.data as any).status.type === "busy"),
    );
    const statusCalls = fo.calls.filter((c) => c.path === "/session/status").length;
    fo.dropStreams();
    fo.status = {}; // the turn ends while the stream is down: its session.idle is lost
    const t0 = Date.now();
    const ev = await backend.waitFor("agent_idle after reconnect", () => idleFor(seq), 4_000).catch((e) => { console.log(relayLog); throw e; });
    expect(ev.data).toEqual({ inputSeq: seq });
    expect(Date.now() - t0).toBeLessThan(3_000); // not the 5 s status poll: the reconnect confirmation
    expect(fo.streams()).toBe(1);
    expect(fo.calls.filter((c) => c.path === "/session/status").length).toBeGreaterThan(statusCalls);
  }, 10_000);

  it("a lost session.idle without any stream trouble: the status poll finds it; the turn's error is reported", async () => {
    fo.onPrompt = () => {
      busy();
      fo.send("session.error", { sessionID: SID, error: { name: "APIError", data: { message: "Incorrect API key provided" } } });
      fo.status = {}; // idle, silently
    };
    const seq = backend.addCommand("prompt", "third");
    const ev = await backend.waitFor("agent_idle from the poll", () => idleFor(seq), 8_000);
    expect(ev.data).toEqual({ inputSeq: seq, error: "Incorrect API key provided" });
    idle(); // a late duplicate idle changes nothing
    await sleep(300);
    expect(backend.ofType(RELAY_EVENT.agentIdle).filter((e) => e.data.inputSeq === seq)).toHaveLength(1);
  }, 12_000);

  it("answers permission asks (once) and rejects questions; drops other sessions' events; applies abort", async () => {
    fo.send("permission.asked", { id: "per_1", sessionID: SID, permission: "external_directory", patterns: ["/etc/*"], metadata: {}, always: [] });
    fo.send("question.asked", { id: "que_1", sessionID: SID, questions: [{ question: "Which?", options: [] }] });
    fo.send("message.updated", { sessionID: "ses_other", info: { id: "msg_x", sessionID: "ses_other", role: "user" } });
    fo.send("todo.updated", { sessionID: SID, todos: [{ content: "a", status: "pending", priority: "high" }] });
    await backend.waitFor("replies", () =>
      fo.calls.some((c) => c.path === "/permission/per_1/reply") && fo.calls.some((c) => c.path === "/question/que_1/reject"),
    );
    expect(fo.calls.find((c) => c.path === "/permission/per_1/reply")!.body).toEqual({ reply: "once" });
    await backend.waitFor("todo forwarded", () => backend.ofType("todo.updated")[0]);
    expect(backend.ofType("permission.asked")).toHaveLength(1);
    expect(backend.ofType("question.asked")).toHaveLength(1);
    expect(backend.ordered().some((e) => (e.data as any).sessionID === "ses_other")).toBe(false);

    const seq = backend.addCommand("abort");
    await backend.waitFor("abort applied", () => fo.calls.some((c) => c.path === `/session/${SID}/abort`) && backend.commandAcks.includes(seq));
  }, 10_000);

  it("a 401 from the backend ends the run: exit 0, nothing more is sent", async () => {
    backend.runOver = true;
    const code = await Promise.race([relayExit, sleep(5_000).then(() => "timeout")]);
    expect(code).toBe(0);
    expect(relayLog).toMatch(/run is over/);
    expect(relayLog).not.toContain(backend.token);
    expect(relayLog).not.toContain(PASSWORD);
    const rep = seqReport(backend);
    expect(rep.gaps).toEqual([]);
    expect(backend.conflicts).toEqual([]);
    console.log(`scripted run: ${rep.max} events, ${backend.received} rows`);
  }, 10_000);
});
