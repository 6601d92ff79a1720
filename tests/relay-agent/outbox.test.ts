import { afterEach, beforeEach, describe, expect, it } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Outbox, parseOutbox } from "../../src/relay/agent/outbox.ts";

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "relay-outbox-"));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const fileLines = (o: Outbox) => fs.readFileSync(o.file, "utf8").trim().split("\n");

describe("Outbox", () => {
  it("assigns seq 1, 2, 3 ... and writes each event before it is handed out", () => {
    const o = Outbox.open(dir);
    const a = o.append("x", { n: 1 });
    const b = o.append("y", { n: 2 });
    expect([a.seq, b.seq]).toEqual([1, 2]);
    expect(o.peek().map((e) => e.seq)).toEqual([1, 2]);
    // on disk already (before any send): header + 2 events
    expect(fileLines(o).slice(1).map((l) => JSON.parse(l).seq)).toEqual([1, 2]);
    o.close();
  });

  it("peek respects the event and byte limits (but always yields one)", () => {
    const o = Outbox.open(dir);
    for (let i = 0; i < 10; i++) o.append("x", { pad: "a".repeat(100) });
    expect(o.peek(3).map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(o.peek(500, 250).length).toBe(1);
    expect(o.peek(500, 10).length).toBe(1);
    o.close();
  });

  it("ack drops acknowledged events; stale and too-high acks are harmless", () => {
    const o = Outbox.open(dir);
    for (let i = 0; i < 5; i++) o.append("x", {});
    o.ack(3);
    expect(o.peek().map((e) => e.seq)).toEqual([4, 5]);
    o.ack(2); // stale
    expect(o.pendingCount).toBe(2);
    o.ack(99); // beyond what was written: capped
    expect(o.pendingCount).toBe(0);
    expect(o.ackedSeq).toBe(5);
    expect(o.append("x", {}).seq).toBe(6);
    o.close();
  });

  it("compacts the file as events are acknowledged", () => {
    const o = Outbox.open(dir, { compactAfter: 10 });
    for (let i = 0; i < 25; i++) o.append("x", {});
    o.ack(9);
    expect(fileLines(o).length).toBe(26); // not yet: 9 acked lines < 10
    o.ack(12);
    expect(fileLines(o)[0]).toBe('{"ackedSeq":12}');
    expect(fileLines(o).slice(1).map((l) => JSON.parse(l).seq)).toEqual(Array.from({ length: 13 }, (_, i) => 13 + i));
    o.append("x", {});
    expect(JSON.parse(fileLines(o).at(-1)!).seq).toBe(26);
    o.close();
  });

  it("restart: resends exactly the unacknowledged events and continues after the highest seq", () => {
    const o = Outbox.open(dir, { compactAfter: 4 });
    for (let i = 1; i <= 10; i++) o.append("x", { i });
    o.ack(5); // compacted (5 >= 4)
    o.ack(7); // not compacted: the header still says 5
    // crash: no close()

    const r = Outbox.open(dir);
    // 6 and 7 are sent again (the receiver ignores duplicates); nothing is missing.
    expect(r.peek().map((e) => e.seq)).toEqual([6, 7, 8, 9, 10]);
    expect(r.peek()[0]!.data).toEqual({ i: 6 });
    expect(r.append("y", {}).seq).toBe(11);
    r.close();
  });

  it("a graceful close compacts, so nothing acknowledged is resent", () => {
    const o = Outbox.open(dir);
    for (let i = 0; i < 4; i++) o.append("x", {});
    o.ack(3);
    o.close();
    const r = Outbox.open(dir);
    expect(r.peek().map((e) => e.seq)).toEqual([4]);
    r.close();
  });

  it("compactIfIdle rewrites once everything is acknowledged, at most once per interval", async () => {
    const o = Outbox.open(dir, { idleCompactMs: 50 });
    o.append("x", {});
    expect(o.compactIfIdle()).toBe(false); // pending: nothing to do
    o.ack(1);
    expect(o.compactIfIdle()).toBe(true); // opened (= compacted) just now: later
    await new Promise((r) => setTimeout(r, 60));
    expect(o.compactIfIdle()).toBe(false);
    expect(fileLines(o)).toEqual(['{"ackedSeq":1}']);
    o.close();
  });

  it("restart after everything was acknowledged never reuses a seq", () => {
    const o = Outbox.open(dir, { compactAfter: 1 });
    for (let i = 0; i < 3; i++) o.append("x", {});
    o.ack(3);
    o.close();
    expect(fileLines(o)).toEqual(['{"ackedSeq":3}']);
    const r = Outbox.open(dir);
    expect(r.pendingCount).toBe(0);
    expect(r.append("x", {}).seq).toBe(4);
    r.close();
  });

  it("restart after a crash mid-write drops the torn line and keeps appending cleanly", () => {
    const o = Outbox.open(dir);
    o.append("x", {});
    o.append("x", {});
    o.close();
    fs.appendFileSync(o.file, '{"seq":3,"type":"x","at":"2026-'); // torn write
    const r = Outbox.open(dir);
    expect(r.peek().map((e) => e.seq)).toEqual([1, 2]);
    expect(r.append("y", {}).seq).toBe(3);
    r.close();
    const again = Outbox.open(dir);
    expect(again.peek().map((e) => [e.seq, e.type])).toEqual([
      [1, "x"],
      [2, "x"],
      [3, "y"],
    ]);
    again.close();
  });

  it("many restarts interleaved with acks: no gaps, no duplicates", () => {
    const sent = new Map<number, string>();
    let acked = 0;
    let nextId = 0;
    for (let round = 0; round < 6; round++) {
      const o = Outbox.open(dir, { compactAfter: 3 });
      for (const ev of o.peek()) if (!sent.has(ev.seq)) sent.set(ev.seq, String(ev.data.id));
      for (let i = 0; i < 7; i++) {
        const ev = o.append("x", { id: nextId++ });
        sent.set(ev.seq, String(ev.data.id));
      }
      acked = Math.min(o.lastSeq, acked + 5);
      o.ack(acked);
      o.close();
    }
    const final = Outbox.open(dir);
    const seqs = [...sent.keys()].sort((a, b) => a - b);
    expect(seqs).toEqual(Array.from({ length: 42 }, (_, i) => i + 1));
    // each seq carries exactly the event first written under it
    expect(seqs.map((s) => sent.get(s))).toEqual(Array.from({ length: 42 }, (_, i) => String(i)));
    expect(final.peek().map((e) => e.seq)).toEqual(seqs.filter((s) => s > acked));
    final.close();
  });

  it("waitForEvents resolves on append", async () => {
    const o = Outbox.open(dir);
    let woke = false;
    const p = o.waitForEvents().then(() => (woke = true));
    await new Promise((r) => setTimeout(r, 10));
    expect(woke).toBe(false);
    o.append("x", {});
    await p;
    expect(woke).toBe(true);
    o.close();
  });

  it("parseOutbox ignores duplicates and events at or below the header", () => {
    const text = ['{"ackedSeq":2}', '{"seq":2,"type":"a","at":"","data":{}}', '{"seq":3,"type":"b","at":"","data":{}}', '{"seq":3,"type":"dup","at":"","data":{}}'].join("\n");
    expect(parseOutbox(text)).toEqual({ ackedSeq: 2, events: [{ seq: 3, type: "b", at: "", data: {} }] });
  });
});

describe("relay lock", () => {
  it("refuses a second live relay on the same state dir, takes over from a dead one", async () => {
    const { takeRelayLock } = await import("../../src/relay/agent/state.ts");
    const { spawn } = await import("node:child_process");
    const other = spawn(process.execPath, ["-e", "setTimeout(() => {}, 30000)"], { stdio: "ignore" });
    try {
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, "relay.pid"), `${other.pid}\n`);
      expect(() => takeRelayLock(dir, () => true)).toThrow(/another relay/);
      expect(() => takeRelayLock(dir, () => false)).not.toThrow(); // owner dead: taken over
      expect(fs.readFileSync(path.join(dir, "relay.pid"), "utf8").trim()).toBe(String(process.pid));
      expect(() => takeRelayLock(dir, () => true)).not.toThrow(); // our own lock
    } finally {
      other.kill("SIGKILL");
    }
  });
});
