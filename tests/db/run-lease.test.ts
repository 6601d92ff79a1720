/**
 * One owner for the run row, on the embedded database: a process that lost a run's lease (it expired and another
 * process took it) cannot write to the run any more, and a failed renewal aborts the work it was doing.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Database, migrate, openDatabase } from "../../src/db/database.ts";
import { createLogger } from "../../src/log/logger.ts";
import { LeaseLost, mustHold, underLease } from "../../src/runs/lease.ts";
import { RunBus } from "../../src/runs/run-bus.ts";
import { RunStore } from "../../src/runs/run-store.ts";
import { forceRunRow } from "../helpers/force-run-row.ts";
import { tmpDir } from "../helpers/harness.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until<T>(what: string, fn: () => Promise<T> | T, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe("run leases on the embedded database", () => {
  let database: Database;
  let a: RunStore;
  let b: RunStore;
  const log = createLogger({ level: "silent" });

  beforeAll(async () => {
    database = await openDatabase({ dataDir: tmpDir("deckhand-lease-") });
    await migrate(database);
    // Two writers, as two server processes would be (one database).
    a = new RunStore(database.db, new RunBus(database));
    b = new RunStore(database.db, new RunBus(database));
  }, 240_000);
  afterAll(async () => {
    await database?.close();
  }, 60_000);

  it("the writer whose lease expired and was taken writes nothing; the new holder's writes land", async () => {
    const created = await a.create({ repo: "demo", prompt: "lease test", source: "api" });
    const claimed = await a.leases.claimQueued("proc-a", { ms: 300, maxConcurrent: 10 });
    expect(claimed).toMatchObject({ id: created.id, status: "provisioning", leaseOwner: "proc-a" });
    // While A holds it, B cannot take it.
    expect(await b.leases.take(created.id, "proc-b", 60_000)).toBe(false);
    // A stalls past its lease; B takes the run over.
    await until("B takes the expired lease", () => b.leases.take(created.id, "proc-b", 60_000));

    const asA = { leaseOwner: "proc-a" };
    expect(await a.phase(created.id, { phase: "provision_attempt", attempts: 1 }, asA)).toBe(false);
    expect(await a.recordSandboxStarting(created.id, { relayTokenHash: "x", modelTokenHash: "y", sandboxProvider: "local", sandboxHost: "host-a" }, asA)).toBe(false);
    expect(await a.scheduleRetry(created.id, { at: new Date(), attempts: 1, error: "boom" }, asA)).toBe(false);
    expect(await a.transition(created.id, { type: "fail", code: "provision_failed", reason: "A gave up" }, asA)).toBeNull();
    expect(await a.recordSandboxReleased(created.id, asA)).toBe(false);
    expect(await a.leases.renew(created.id, "proc-a", 60_000)).toBe(false);
    await a.leases.release(created.id, "proc-a"); // releases nothing of B's
    expect(() => mustHold(created.id, false)).toThrow(LeaseLost);

    const row = (await b.get(created.id))!;
    expect(row).toMatchObject({ status: "provisioning", attempts: 0, sandboxProvider: null, relayTokenHash: null, retryAttempts: 0, leaseOwner: "proc-b" });

    const asB = { leaseOwner: "proc-b" };
    expect(await b.phase(created.id, { phase: "provision_attempt", attempts: 1 }, asB)).toBe(true);
    expect(await b.transition(created.id, { type: "fail", code: "provision_failed", reason: "B gave up" }, asB)).toMatchObject({ status: "failed", statusReason: "B gave up", attempts: 1 });
  }, 60_000);

  it("a renewal that finds the lease taken aborts the work in progress; its later writes are refused", async () => {
    const created = await a.create({ repo: "demo", prompt: "renewal test", source: "api" });
    expect(await a.leases.claimQueued("proc-a", { ms: 300, maxConcurrent: 10 })).toMatchObject({ id: created.id });
    const outcome = await underLease(a.leases, created.id, { owner: "proc-a", ms: 300, log }, async (lease) => {
      expect(await a.phase(created.id, { phase: "provision_attempt", attempts: 1 }, lease)).toBe(true);
      // Another process takes the run over (as after a long pause of this one).
      await forceRunRow(database.db, created.id, { leaseOwner: "proc-b", leaseExpiresAt: new Date(Date.now() + 60_000) });
      await until("the work's signal aborts", () => lease.signal.aborted);
      expect(lease.signal.reason).toBeInstanceOf(LeaseLost);
      const wrote = await a.phase(created.id, { phase: "sandbox_created", sandboxId: "sb-a" }, lease);
      expect(() => mustHold(created.id, wrote, lease)).toThrow(LeaseLost);
      return "abandoned";
    });
    expect(outcome).toBe("abandoned");
    expect(await b.get(created.id)).toMatchObject({ leaseOwner: "proc-b", sandboxId: null, attempts: 1 });
  }, 60_000);
});
