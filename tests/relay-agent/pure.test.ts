import { describe, expect, it } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { backoffDelay } from "../../src/relay/agent/backoff.ts";
import { configFromEnv } from "../../src/relay/agent/config.ts";
import {
  isAssistantMessageDone,
  sessionErrorMessage,
  sessionIdOf,
  shouldForward,
  TextTracker,
  type OpencodeEvent,
} from "../../src/relay/agent/events.ts";
import { SseParser } from "../../src/relay/agent/sse.ts";
import { replayAfterSuspension } from "../../src/relay/agent/state.ts";
import { shouldEmitIdle, statusOf, type TurnState } from "../../src/relay/agent/turn.ts";

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../fixtures");
const fixture = (name: string): OpencodeEvent[] =>
  fs.readFileSync(path.join(FIXTURES, name), "utf8").trim().split("\n").map((l) => JSON.parse(l));

/** What the relay forwards for a recorded stream: forwarded events plus synthetic full-text updates. */
function relayView(events: OpencodeEvent[], sessionId: string) {
  const tracker = new TextTracker();
  const out: { type: string; data: any }[] = [];
  for (const ev of events) {
    const sid = sessionIdOf(ev);
    if (sid !== undefined && sid !== sessionId) continue;
    tracker.observe(ev);
    if (!shouldForward(ev, sessionId)) continue;
    if (ev.type === "session.idle" || ev.type === "session.error") for (const d of tracker.flush()) out.push({ type: "message.part.updated", data: d });
    if (isAssistantMessageDone(ev)) for (const d of tracker.flush(ev.properties!.info.id)) out.push({ type: "message.part.updated", data: d });
    out.push({ type: ev.type, data: ev.properties });
  }
  return out;
}

describe("which events are forwarded", () => {
  it("drops noise and other sessions, keeps session-less events that matter", () => {
    const sid = "ses_a";
    expect(shouldForward({ type: "server.heartbeat", properties: {} }, sid)).toBe(false);
    expect(shouldForward({ type: "server.connected", properties: {} }, sid)).toBe(false);
    expect(shouldForward({ type: "file.watcher.updated", properties: { file: "x" } }, sid)).toBe(false);
    expect(shouldForward({ type: "message.part.delta", properties: { sessionID: sid } }, sid)).toBe(false);
    expect(shouldForward({ type: "plugin.added", properties: { id: "x" } }, sid)).toBe(false);
    expect(shouldForward({ type: "file.edited", properties: { file: "/p/x" } }, sid)).toBe(true);
    expect(shouldForward({ type: "session.idle", properties: { sessionID: sid } }, sid)).toBe(true);
    expect(shouldForward({ type: "session.idle", properties: { sessionID: "ses_b" } }, sid)).toBe(false);
    expect(shouldForward({ type: "message.updated", properties: { info: { sessionID: "ses_b" } } }, sid)).toBe(false);
    expect(shouldForward({ type: "session.next.text.delta", properties: { sessionID: sid } }, sid)).toBe(false);
  });

  it("write-file fixture: the final assistant text and the tool result are forwarded, noise is not", () => {
    const events = fixture("opencode-write-file.events.jsonl");
    const sid = sessionIdOf(events.find((e) => e.type === "session.created")!)!;
    const out = relayView(events, sid);
    const types = new Set(out.map((e) => e.type));
    for (const t of ["server.connected", "plugin.added", "file.watcher.updated", "message.part.delta"]) expect(types.has(t)).toBe(false);
    expect(types.has("file.edited")).toBe(true);
    const texts = out.filter((e) => e.type === "message.part.updated" && e.data.part.type === "text").map((e) => e.data.part.text);
    expect(texts).toContain("Wrote hello.txt.");
    expect(out.some((e) => e.data?.part?.state?.status === "completed")).toBe(true);
    expect(out.filter((e) => e.data?.synthetic)).toEqual([]); // OpenCode sent the full text itself
    expect(out.length).toBeLessThan(events.length / 2);
  });

  it("steer fixture: events of the other session are dropped; both answers' text arrives", () => {
    const events = fixture("opencode-steer.events.jsonl");
    const sid = sessionIdOf(events[0]!)!;
    const out = relayView(events, sid);
    expect(out.every((e) => (sessionIdOf({ type: e.type, properties: e.data }) ?? sid) === sid)).toBe(true);
    const texts = out.filter((e) => e.type === "message.part.updated" && e.data.part.type === "text" && e.data.part.time?.end).map((e) => e.data.part.text);
    expect(texts).toEqual(["First part done.", "Handled the steering note too."]);
  });

  it("a text part whose final update is lost is completed from its deltas", () => {
    const events = fixture("opencode-write-file.events.jsonl");
    const sid = sessionIdOf(events.find((e) => e.type === "session.created")!)!;
    // remove the full-text update that follows the delta
    const deltaAt = events.findIndex((e) => e.type === "message.part.delta");
    const cut = events.filter((_, i) => i !== deltaAt + 1);
    const out = relayView(cut, sid);
    const synth = out.filter((e) => e.data?.synthetic);
    expect(synth).toHaveLength(1);
    expect(synth[0]!.data.part).toMatchObject({ type: "text", text: "Wrote hello.txt." });
    // ... and it comes before the end of the message / the idle
    const idleIdx = out.findIndex((e) => e.type === "session.idle");
    expect(out.indexOf(synth[0]!)).toBeLessThan(idleIdx);
  });

  it("reads session.error messages", () => {
    const events = fixture("opencode-model-401.events.jsonl");
    expect(sessionErrorMessage(events.find((e) => e.type === "session.error")!)).toBe("Incorrect API key provided");
    expect(sessionErrorMessage({ type: "session.error", properties: { error: { name: "MessageAbortedError", data: {} } } })).toBe("MessageAbortedError");
  });
});

describe("idle decision", () => {
  const base: TurnState = { deliveredSeq: 1, deliveredAt: 1_000, idleEmittedSeq: 0, sawBusySinceDelivery: true };
  it("emits once the session was busy and is confirmed idle", () => {
    expect(shouldEmitIdle(base, "idle", 2_000)).toBe(true);
    expect(shouldEmitIdle(base, "busy", 2_000)).toBe(false);
    expect(shouldEmitIdle(base, "retry", 2_000)).toBe(false);
  });
  it("is idempotent: nothing after agent_idle for that seq", () => {
    expect(shouldEmitIdle({ ...base, idleEmittedSeq: 1 }, "idle", 2_000)).toBe(false);
    expect(shouldEmitIdle({ ...base, deliveredSeq: 0, idleEmittedSeq: 0 }, "idle", 2_000)).toBe(false);
  });
  it("does not trust 'idle' right after a delivery before busy was seen, except after the grace", () => {
    const fresh = { ...base, sawBusySinceDelivery: false };
    expect(shouldEmitIdle(fresh, "idle", 1_100)).toBe(false);
    expect(shouldEmitIdle(fresh, "idle", 1_000 + 10_000)).toBe(true);
  });
  it("reads our session's status from /session/status", () => {
    expect(statusOf({}, "s")).toBe("idle");
    expect(statusOf({ s: { type: "busy" } }, "s")).toBe("busy");
    expect(statusOf({ s: { type: "retry", attempt: 1 } }, "s")).toBe("retry");
    expect(statusOf({ other: { type: "busy" } }, "s")).toBe("idle");
  });
});

describe("SSE parser", () => {
  it("handles split chunks, CRLF, multi-line data and comments", () => {
    const p = new SseParser();
    expect(p.push('data: {"a"')).toEqual([]);
    expect(p.push(":1}\n\n: comment\n\ndata: x\r\ndata: y\r\n\r\nda")).toEqual(['{"a":1}', "x\ny"]);
    expect(p.push("ta: z\n\n")).toEqual(["z"]);
  });
});

describe("backoff", () => {
  it("grows from 100 ms to a 5 s cap with jitter in [50%, 100%]", () => {
    expect(backoffDelay(0, 100, 5000, () => 1)).toBe(100);
    expect(backoffDelay(0, 100, 5000, () => 0)).toBe(50);
    expect(backoffDelay(3, 100, 5000, () => 1)).toBe(800);
    expect(backoffDelay(20, 100, 5000, () => 1)).toBe(5000);
    expect(backoffDelay(1000, 100, 5000, () => 0)).toBe(2500);
  });
});

describe("config", () => {
  const env = {
    DECKHAND_RUN_ID: "r1",
    DECKHAND_BACKEND_URL: "http://b/",
    DECKHAND_RELAY_TOKEN: "t",
    OPENCODE_URL: "http://o",
    OPENCODE_SERVER_PASSWORD: "p",
    OPENCODE_DIRECTORY: "/w",
    OPENCODE_PID_FILE: "/pid",
    OPENCODE_LOG_FILE: "/log",
    DECKHAND_STATE_DIR: "/s",
  };
  it("reads the environment, with defaults", () => {
    expect(configFromEnv(env)).toMatchObject({ backendUrl: "http://b", heartbeatMs: 15_000 });
    expect(configFromEnv({ ...env, DECKHAND_HEARTBEAT_MS: "200" }).heartbeatMs).toBe(200);
  });
  it("names what is missing", () => {
    expect(() => configFromEnv({ ...env, DECKHAND_RELAY_TOKEN: "" })).toThrow(/DECKHAND_RELAY_TOKEN/);
  });
});

describe("user messages (the order of inputs)", () => {
  it("counts each user message of our session once, from a recorded steering stream", async () => {
    const { UserMessageWatch } = await import("../../src/relay/agent/user-messages.ts");
    const evs = fixture("opencode-steer.events.jsonl");
    const sid = "ses_df9c8739fffeO3b26HFoq3gAe6";
    const watch = new UserMessageWatch();
    for (const ev of evs) watch.observe(ev, sid);
    expect(watch.count).toBe(2); // five user message.updated events, two messages
    const other = new UserMessageWatch();
    for (const ev of evs) other.observe(ev, "ses_someone_else");
    expect(other.count).toBe(0);
  });
  it("waiting for the next one resolves when it comes, false after the bound", async () => {
    const { UserMessageWatch } = await import("../../src/relay/agent/user-messages.ts");
    const watch = new UserMessageWatch();
    const signal = new AbortController().signal;
    const t0 = Date.now();
    expect(await watch.waitForMoreThan(0, 50, signal)).toBe(false);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(45);
    const later = watch.waitForMoreThan(0, 5_000, signal);
    setTimeout(() => watch.observe({ type: "message.updated", properties: { info: { id: "msg_1", role: "user", sessionID: "s" } } }, "s"), 10);
    expect(await later).toBe(true);
  });
});

describe("per-event size limit (relay and receiver)", () => {
  it("cuts the longest strings with a visible marker until the event fits; small events pass untouched", async () => {
    const { truncateEventData, TRUNCATED_MARK } = await import("../../src/relay/truncate.ts");
    const small = { part: { text: "hello" } };
    expect(truncateEventData(small, 4096)).toEqual({ data: small, truncated: false });
    const big = { part: { type: "tool", state: { output: `start\n${"é".repeat(1_000_000)}`, input: { command: "cat x" } } } };
    const cut = truncateEventData(big, 64 * 1024);
    expect(cut.truncated).toBe(true);
    expect(Buffer.byteLength(JSON.stringify(cut.data))).toBeLessThanOrEqual(64 * 1024);
    const out = (cut.data as typeof big).part.state.output;
    expect(out.startsWith("start\n")).toBe(true);
    expect(out).toContain(`${TRUNCATED_MARK} 1.`);
    expect((cut.data as typeof big).part.state.input.command).toBe("cat x");
    expect(big.part.state.output.length).toBe(1_000_006); // the original is not modified
    // Thousands of small fields: no string to cut, so the event becomes a marker.
    const wide = Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`k${i}`, i]));
    const marker = truncateEventData(wide, 4096);
    expect(marker.data).toMatchObject({ truncated: true });
    expect(String(marker.data.note)).toContain(TRUNCATED_MARK);
  });

  it("the relay reads its limit from DECKHAND_MAX_EVENT_BYTES (default 128 KiB)", () => {
    const env = {
      DECKHAND_RUN_ID: "r",
      DECKHAND_BACKEND_URL: "http://x",
      DECKHAND_RELAY_TOKEN: "t",
      OPENCODE_URL: "http://o",
      OPENCODE_SERVER_PASSWORD: "p",
      OPENCODE_DIRECTORY: "/d",
      OPENCODE_PID_FILE: "/p",
      OPENCODE_LOG_FILE: "/l",
      DECKHAND_STATE_DIR: "/s",
    };
    expect(configFromEnv(env).maxEventBytes).toBe(128 * 1024);
    expect(configFromEnv({ ...env, DECKHAND_MAX_EVENT_BYTES: "65536" }).maxEventBytes).toBe(65536);
  });
});

describe("a relay restarted after an idle suspension", () => {
  it("applies again every input after the last finished turn (one may have reached the stopped OpenCode)", () => {
    // Turn 1 finished (delivered input 1); follow-up 2 reached the old relay just as it was stopped.
    expect(replayAfterSuspension({ sessionId: "s", lastAppliedSeq: 2, deliveredSeq: 2, deliveredAt: 5, idleEmittedSeq: 1 }, 1)).toEqual({ sessionId: "s", lastAppliedSeq: 1, deliveredSeq: 1, deliveredAt: 5, idleEmittedSeq: 1 });
    // Nothing after the finished turn: nothing to change.
    expect(replayAfterSuspension({ lastAppliedSeq: 3, deliveredSeq: 3, deliveredAt: 5, idleEmittedSeq: 3 }, 3)).toBeNull();
    expect(replayAfterSuspension({}, 0)).toBeNull();
  });
});
