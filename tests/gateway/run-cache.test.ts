/** The gateway's memory of runs and of today's spending, without I/O (loaders are plain functions here). */
import { describe, expect, it } from "vitest";
import type { Run } from "../../src/db/schema.ts";
import { DailySpend } from "../../src/gateway/daily-spend.ts";
import { RunCache } from "../../src/gateway/run-cache.ts";
import { hashToken } from "../../src/runs/tokens.ts";
import { runRow } from "../helpers/run-row.ts";

const at = new Date("2026-12-01T10:00:00Z");

/** A "database" of runs; counts reads; `hold()` makes the next reads wait until released. */
function fakeDb(rows: Run[]) {
  const db = new Map(rows.map((r) => [r.id, r]));
  let gate: Promise<void> | null = null;
  const reads = { byHash: 0, byId: 0 };
  return {
    db,
    reads,
    hold() {
      let release!: () => void;
      gate = new Promise((r) => (release = r));
      return () => {
        gate = null;
        release();
      };
    },
    byTokenHash: async (h: string) => {
      reads.byHash++;
      if (gate) await gate;
      return [...db.values()].find((r) => r.modelTokenHash === h) ?? null;
    },
    byId: async (id: string) => {
      reads.byId++;
      if (gate) await gate;
      return db.get(id) ?? null;
    },
  };
}

const run = (id: string, token: string, over: Partial<Run> = {}) =>
  runRow(at, { id, status: "running", repo: "demo", branch: "b", prompt: "p", title: "t", source: "api", modelTokenHash: hashToken(token), ...over });

const tick = () => new Promise((r) => setImmediate(r));

describe("run cache", () => {
  it("reads a token's run once, then answers from memory", async () => {
    const f = fakeDb([run("r1", "tok1")]);
    const cache = new RunCache(f);
    expect((await cache.lookup("tok1"))?.id).toBe("r1");
    expect((await cache.lookup("tok1"))?.id).toBe("r1");
    expect(await cache.lookup("nope")).toBeNull();
    expect(f.reads).toEqual({ byHash: 2, byId: 0 });
  });

  it("sees a stop announced on the bus before the next call, and tells requests in flight", async () => {
    const f = fakeDb([run("r1", "tok1")]);
    const cache = new RunCache(f);
    const r = (await cache.lookup("tok1"))!;
    let stopped = 0;
    cache.watch(r, () => stopped++);
    f.db.set("r1", { ...r, status: "cancelled" });
    cache.changed("r1");
    expect((await cache.lookup("tok1"))?.status).toBe("cancelled");
    expect(stopped).toBe(1);
    // A new sandbox: a new token; the old one no longer finds the run.
    f.db.set("r1", { ...r, modelTokenHash: hashToken("tok2") });
    cache.changed("r1");
    expect(await cache.lookup("tok1")).toBeNull();
    expect((await cache.lookup("tok2"))?.status).toBe("running");
  });

  it("counts a call's usage at once and exactly once, while its record is written", async () => {
    const f = fakeDb([run("r1", "tok1", { usageCostMicros: 100, usageInput: 10 })]);
    const cache = new RunCache(f);
    await cache.lookup("tok1");
    let finishWrite!: () => void;
    const written = cache.record("r1", { micros: 50, tokens: 5 }, async () => {
      await new Promise<void>((r) => (finishWrite = r));
      const row = { ...f.db.get("r1")!, usageCostMicros: 150, usageInput: 15 };
      f.db.set("r1", row);
      return row;
    });
    // Meanwhile the run changes (an event): the read waits behind the record, so the row never counts it twice.
    cache.changed("r1");
    const during = cache.lookup("tok1");
    expect(cache.pending("r1")).toEqual({ micros: 50, tokens: 5 });
    await tick();
    finishWrite();
    await written;
    const row = (await during)!;
    expect(row.usageCostMicros + cache.pending("r1").micros).toBe(150);
    expect(row.usageInput + cache.pending("r1").tokens).toBe(15);
  });

  it("does not make calls wait for its own change notice, but does for anyone else's", async () => {
    const f = fakeDb([run("r1", "tok1")]);
    const cache = new RunCache(f);
    await cache.lookup("tok1");
    const release = f.hold();
    // The gateway's own notice: the local one is muted, its echo read again without anyone waiting for it.
    await cache.ownChange("r1", async () => cache.changed("r1"));
    cache.changed("r1"); // the echo
    let answered = false;
    void cache.lookup("tok1").then(() => (answered = true));
    await tick();
    expect(answered).toBe(true);
    // Someone else's change: the next call waits for the read.
    cache.changed("r1");
    answered = false;
    const next = cache.lookup("tok1").then(() => (answered = true));
    await tick();
    expect(answered).toBe(false);
    release();
    await next;
    expect(answered).toBe(true);
  });

  it("keeps at most maxEntries runs", async () => {
    const f = fakeDb([run("r1", "t1"), run("r2", "t2"), run("r3", "t3")]);
    const cache = new RunCache({ ...f, maxEntries: 2 });
    for (const t of ["t1", "t2", "t3"]) await cache.lookup(t);
    expect(cache.size).toBe(2);
  });
});

describe("daily spending", () => {
  it("reads today's sums once in a while and adds this process's spending at once", async () => {
    let now = 0;
    const reads: string[] = [];
    const db: Record<string, number> = { total: 1000, ana: 400 };
    const d = new DailySpend({ read: async (_day, p) => (reads.push(p ?? "total"), db[p ?? "total"] ?? 0), ttlMs: 2000, maxStaleMs: 10_000, now: () => now });
    expect(await d.get("2026-12-01", null)).toBe(1000);
    expect(await d.get("2026-12-01", "ana")).toBe(400);
    d.add("2026-12-01", "ana", 50);
    expect(await d.get("2026-12-01", "ana")).toBe(450);
    expect(await d.get("2026-12-01", null)).toBe(1050);
    expect(reads).toEqual(["total", "ana"]);
    // Older than the TTL: read again in the background (another process spent too).
    db.total = 2000;
    now = 3000;
    await d.get("2026-12-01", null);
    await tick();
    expect(await d.get("2026-12-01", null)).toBe(2000);
    // A new day starts from the database again.
    expect(await d.get("2026-12-02", "ana")).toBe(400);
  });
});
