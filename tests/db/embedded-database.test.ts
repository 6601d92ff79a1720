/**
 * The embedded database (PGlite) runs in a process of its own behind the Postgres wire protocol: queries do not
 * block the server's event loop; LISTEN/NOTIFY, transactions and the migrations' advisory lock work over the one
 * connection; a crash is reported and the process started again; it never outlives the server.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Database, migrate, openDatabase } from "../../src/db/database.ts";
import { restartDelayMs } from "../../src/db/pglite-process.ts";
import { createLogger } from "../../src/log/logger.ts";
import { tmpDir } from "../helpers/harness.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Running (a zombie waiting for its reaper counts as gone). */
const alive = (pid: number) => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
};
async function until<T>(what: string, fn: () => Promise<T> | T, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await Promise.resolve(fn()).catch(() => undefined);
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

// One data directory for the file: a new one costs an initdb (tens of seconds on a busy machine).
const dataDir = tmpDir("deckhand-embedded-");

describe("the embedded database in its own process", () => {
  const lines: string[] = [];
  const log = createLogger({ level: "info", destination: new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }) });
  let database: Database;

  beforeAll(async () => {
    database = await openDatabase({ dataDir, log });
    await migrate(database);
    await migrate(database); // again: already applied, and the advisory lock was released
  }, 240_000);
  afterAll(async () => {
    const pid = database?.embeddedPid?.();
    await database?.close();
    if (pid) expect(alive(pid)).toBe(false);
  }, 60_000);

  it("a slow query leaves the server's event loop free: timers keep firing while it runs", async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 20);
    try {
      await database.db.execute("select sum(i) from generate_series(1, 3000000) i" as never);
    } finally {
      clearInterval(timer);
    }
    // In-process PGlite runs the query synchronously: not one tick until it is done.
    expect(ticks).toBeGreaterThan(5);
  }, 120_000);

  it("many concurrent queries, a transaction and LISTEN/NOTIFY share the one connection", async () => {
    const got: string[] = [];
    const unlisten = await database.listen("deckhand_test", (p) => got.push(p));
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        i % 10 === 0
          ? database.db.transaction(async (tx) => (await tx.execute(`select ${i}::int as n` as never)) as unknown as { n: number }[])
          : (database.db.execute(`select ${i}::int as n` as never) as unknown as Promise<{ n: number }[]>),
      ),
    );
    expect(results.map((r) => r[0]!.n)).toEqual(Array.from({ length: 60 }, (_, i) => i));
    await database.notify("deckhand_test", "one");
    await database.notify("deckhand_test", "two");
    await until("both notifications", () => got.length === 2, 10_000);
    expect(got).toEqual(["one", "two"]);
    await unlisten();
    await database.notify("deckhand_test", "three");
    await database.db.execute("select 1" as never);
    await sleep(200);
    expect(got).toEqual(["one", "two"]);
  }, 60_000);

  it("a second opener of the same DATA_DIR is refused with who holds it, and the first keeps working", async () => {
    await expect(openDatabase({ dataDir })).rejects.toThrow(new RegExp(`in use by process ${database.embeddedPid!()}`));
    expect(await database.db.execute("select 1 as one" as never)).toEqual([{ one: 1 }]);
  }, 120_000);

  it("a crashed database process is reported in plain words and started again; LISTEN survives", async () => {
    const got: string[] = [];
    await database.listen("deckhand_restart", (p) => got.push(p));
    const before = database.embeddedPid!()!;
    process.kill(before, "SIGKILL");
    await until("the crash reported", () => lines.some((l) => l.includes("exited unexpectedly")), 10_000);
    const line = JSON.parse(lines.find((l) => l.includes("exited unexpectedly"))!);
    expect(line).toMatchObject({ level: 50, component: "database", signal: "SIGKILL", pid: before });
    expect(line.msg).toMatch(/embedded database process \(PGlite\) exited unexpectedly/);
    await until("the process back", () => lines.some((l) => l.includes("running again")), 180_000);
    expect(database.embeddedPid!()).not.toBe(before);
    // The data is still there, and notifications still arrive.
    const rows = (await until("a query answered", () => database.db.execute("select count(*)::int as n from runs" as never), 30_000)) as unknown as { n: number }[];
    expect(rows[0]!.n).toBe(0);
    await until("a notification after the restart", async () => (await database.notify("deckhand_restart", "back"), got.includes("back")), 10_000);
  }, 240_000);
});

// After the describe block has closed its database: the same directory, opened by a server of its own.
it("the embedded database process ends when its server is killed (kill -9)", async () => {
  const script = `
    import { openDatabase } from ${JSON.stringify(path.resolve(import.meta.dirname, "../../src/db/database.ts"))};
    const d = await openDatabase({ dataDir: ${JSON.stringify(dataDir)} });
    console.log("PID " + d.embeddedPid());
    setInterval(() => {}, 1000);
  `;
  const server = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  server.stdout.on("data", (c) => (out += c));
  try {
    const child = Number(await until("the database process", () => /PID (\d+)/.exec(out)?.[1], 180_000));
    expect(alive(child)).toBe(true);
    server.kill("SIGKILL");
    await until("the database process gone", () => !alive(child), 15_000);
  } finally {
    server.kill("SIGKILL");
  }
}, 240_000);

it("restarts back off exponentially up to 30 s", () => {
  expect([0, 1, 2, 3, 6, 20].map(restartDelayMs)).toEqual([500, 1000, 2000, 4000, 30_000, 30_000]);
});
