// The REAL e2b SDK against the fake E2B (control plane + envd) on loopback.
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthenticationError, CommandExitError, E2B, RateLimitError, Sandbox, SandboxError, SandboxNotFoundError, TimeoutError } from "e2b";
import { startFakeE2B, type FakeE2B } from "./e2b/index.ts";

let fake: FakeE2B;
let conn: { apiKey: string; apiUrl: string; sandboxUrl: string };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // a zombie still answers kill(0); treat it as dead
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

async function waitFor(cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await sleep(50);
  }
  throw new Error("condition not met in time");
}

async function caught(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a rejection");
}

beforeAll(async () => {
  fake = await startFakeE2B();
  conn = { apiKey: fake.apiKey, apiUrl: fake.apiUrl, sandboxUrl: fake.sandboxUrl };
});

afterAll(async () => {
  await fake?.close();
});

describe("fake E2B with the real SDK", () => {
  let sbx: Sandbox;

  beforeAll(async () => {
    sbx = await Sandbox.create("deckhand", { ...conn, metadata: { deckhandRunId: "r1" }, envs: { SANDBOX_LEVEL: "yes" }, timeoutMs: 120_000 });
  });

  it("creates a sandbox with a folder, metadata and a lifetime", () => {
    const info = fake.sandboxes().find((s) => s.id === sbx.sandboxId)!;
    expect(info).toMatchObject({ templateId: "deckhand", metadata: { deckhandRunId: "r1" }, state: "running" });
    expect(info.endAt - Date.now()).toBeGreaterThan(100_000);
    expect(fake.calls.some((c) => c.plane === "api" && c.method === "POST" && c.path === "/v2/sandboxes")).toBe(true);
    expect(sbx.getHost(3000)).toBe(`3000-${sbx.sandboxId}.${fake.domain}`);
  });

  it("runs a foreground command", async () => {
    const r = await sbx.commands.run("echo hi");
    expect(r).toMatchObject({ exitCode: 0, stdout: "hi\n", stderr: "" });
  });

  it("maps HOME/cwd into the sandbox folder and passes envs", async () => {
    const home = fake.hostPath(sbx.sandboxId, "/home/user");
    const r = await sbx.commands.run('echo "$HOME|$PWD|$SANDBOX_LEVEL|$FOO|$E2B_SANDBOX_ID"', { envs: { FOO: "bar" } });
    expect(r.stdout).toBe(`${home}|${home}|yes|bar|${sbx.sandboxId}\n`);
    await sbx.files.makeDir("/home/user/sub/dir");
    const r2 = await sbx.commands.run("pwd", { cwd: "/home/user/sub/dir" });
    expect(r2.stdout).toBe(`${home}/sub/dir\n`);
  });

  it("streams output and reports non-zero exits as CommandExitError", async () => {
    const out: string[] = [];
    const err: string[] = [];
    await sbx.commands.run("echo a; echo b >&2", { onStdout: (d) => void out.push(d), onStderr: (d) => void err.push(d) });
    expect(out.join("")).toBe("a\n");
    expect(err.join("")).toBe("b\n");
    const e = await caught(sbx.commands.run("echo partial; exit 3"));
    expect(e).toBeInstanceOf(CommandExitError);
    expect((e as CommandExitError).exitCode).toBe(3);
    expect((e as CommandExitError).stdout).toBe("partial\n");
    expect(e.message).toBe("exit status 3");
  });

  it("a foreground command waits for descendants holding its output", async () => {
    const t0 = Date.now();
    const r = await sbx.commands.run("(sleep 0.5; echo late) & echo early");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(450);
    expect(r.stdout).toBe("early\nlate\n");
  });

  it("background: returns at once, is listed, survives, and kill() stops it", async () => {
    const t0 = Date.now();
    const h = await sbx.commands.run("sleep 30", { background: true });
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(h.pid).toBeGreaterThan(0);
    const listed = await sbx.commands.list();
    expect(listed.find((p) => p.pid === h.pid)).toMatchObject({ cmd: "/bin/bash", args: ["-l", "-c", "sleep 30"] });
    await sleep(300);
    expect(alive(h.pid)).toBe(true);
    const reattached = await sbx.commands.connect(h.pid, { timeoutMs: 0 });
    expect(reattached.pid).toBe(h.pid);
    expect(await sbx.commands.kill(h.pid)).toBe(true);
    await waitFor(() => !alive(h.pid));
    const e = await caught(reattached.wait());
    expect(e).toBeInstanceOf(CommandExitError);
    expect(e.message).toBe("signal: killed");
    expect(await caught(h.wait())).toBeInstanceOf(CommandExitError);
    expect(await sbx.commands.kill(h.pid)).toBe(false);
  });

  it("killing a command kills its whole process group", async () => {
    const h = await sbx.commands.run("sleep 30 & sleep 30 & echo started; wait", { background: true });
    await waitFor(() => h.stdout.includes("started"));
    const before = fake.pids(sbx.sandboxId);
    expect(before.length).toBeGreaterThanOrEqual(3);
    await h.kill();
    await waitFor(() => before.every((p) => !alive(p)));
  });

  it("stdin can be fed and closed", async () => {
    const h = await sbx.commands.run("cat", { background: true, stdin: true });
    await sbx.commands.sendStdin(h.pid, "abc");
    await sbx.commands.closeStdin(h.pid);
    const r = await h.wait();
    expect(r.stdout).toBe("abc");
  });

  it("files: text and binary round trip, list, rename, remove", async () => {
    const w = await sbx.files.write("/home/user/notes/a.txt", "héllo\n");
    expect(w).toMatchObject({ name: "a.txt", path: "/home/user/notes/a.txt" });
    expect(await sbx.files.read("/home/user/notes/a.txt")).toBe("héllo\n");
    expect(readFileSync(fake.hostPath(sbx.sandboxId, "/home/user/notes/a.txt"), "utf8")).toBe("héllo\n");
    // the command sees the same file, relative to HOME
    expect((await sbx.commands.run("cat notes/a.txt")).stdout).toBe("héllo\n");

    const bin = new Uint8Array(256).map((_, i) => i);
    await sbx.files.write("/home/user/bin.dat", bin.buffer);
    expect(Array.from(await sbx.files.read("/home/user/bin.dat", { format: "bytes" }))).toEqual(Array.from(bin));
    await sbx.files.write("/home/user/bin2.dat", new Blob([bin]), { useOctetStream: true });
    expect(Array.from(await sbx.files.read("bin2.dat", { format: "bytes" }))).toEqual(Array.from(bin));
    await sbx.files.write("/home/user/empty.txt", "");
    expect(await sbx.files.read("/home/user/empty.txt")).toBe("");

    await sbx.files.write([
      { path: "/home/user/multi/x.txt", data: "x" },
      { path: "/home/user/multi/y.txt", data: "y" },
    ]);
    expect((await sbx.files.list("/home/user/multi")).map((e) => e.name)).toEqual(["x.txt", "y.txt"]);
    expect(await sbx.files.exists("/home/user/multi/x.txt")).toBe(true);
    expect(await sbx.files.exists("/home/user/nope")).toBe(false);
    const moved = await sbx.files.rename("/home/user/multi/x.txt", "/home/user/multi/z.txt");
    expect(moved.path).toBe("/home/user/multi/z.txt");
    await sbx.files.remove("/home/user/multi");
    expect(await sbx.files.exists("/home/user/multi")).toBe(false);
    const e = await caught(sbx.files.read("/home/user/missing.txt"));
    expect(e.constructor.name).toBe("FileNotFoundError");
  });

  it("list filters by metadata and state; the E2B client and env vars work too", async () => {
    const other = await Sandbox.create("deckhand", { ...conn, metadata: { deckhandRunId: "r2" }, timeoutMs: 60_000 });
    const mine = await Sandbox.list({ ...conn, query: { metadata: { deckhandRunId: "r1" } } }).nextItems();
    expect(mine.map((s) => s.sandboxId)).toEqual([sbx.sandboxId]);
    expect(mine[0]).toMatchObject({ templateId: "deckhand", state: "running", metadata: { deckhandRunId: "r1" } });

    const client = new E2B(conn);
    const r2 = await client.Sandbox.list({ query: { metadata: { deckhandRunId: "r2" }, state: ["running"] } }).nextItems();
    expect(r2.map((s) => s.sandboxId)).toEqual([other.sandboxId]);
    expect(await client.Sandbox.list({ query: { metadata: { deckhandRunId: "r2" }, state: ["paused"] } }).nextItems()).toEqual([]);

    // pagination through x-next-token
    const pager = Sandbox.list({ ...conn, limit: 1 });
    const seen: string[] = [];
    while (pager.hasNext) seen.push(...(await pager.nextItems()).map((s) => s.sandboxId));
    expect(seen.sort()).toEqual([sbx.sandboxId, other.sandboxId].sort());

    const saved = { ...process.env };
    try {
      process.env.E2B_API_KEY = fake.apiKey;
      process.env.E2B_API_URL = fake.apiUrl;
      process.env.E2B_SANDBOX_URL = fake.sandboxUrl;
      const again = await Sandbox.connect(other.sandboxId);
      expect((await again.commands.run("echo env")).stdout).toBe("env\n");
    } finally {
      for (const k of ["E2B_API_KEY", "E2B_API_URL", "E2B_SANDBOX_URL"]) if (saved[k] === undefined) delete process.env[k];
    }
    expect(await other.kill()).toBe(true);
  });

  it("pause stops the processes, connect resumes them", async () => {
    const s = await Sandbox.create("deckhand", { ...conn, timeoutMs: 60_000 });
    const h = await s.commands.run("sleep 30", { background: true });
    expect(await s.pause()).toBe(true);
    expect(fake.sandboxes().find((x) => x.id === s.sandboxId)!.state).toBe("paused");
    await waitFor(() => / T /.test(readFileSync(`/proc/${h.pid}/stat`, "utf8")));
    expect(await s.pause()).toBe(false);
    const paused = await Sandbox.list({ ...conn, query: { state: ["paused"] } }).nextItems();
    expect(paused.map((x) => x.sandboxId)).toContain(s.sandboxId);
    const back = await Sandbox.connect(s.sandboxId, { ...conn, timeoutMs: 60_000 });
    expect(fake.sandboxes().find((x) => x.id === s.sandboxId)!.state).toBe("running");
    await waitFor(() => !/ T /.test(readFileSync(`/proc/${h.pid}/stat`, "utf8")));
    expect((await back.commands.run("echo resumed")).stdout).toBe("resumed\n");
    await back.kill();
    await waitFor(() => !alive(h.pid));
  });

  it("sandbox.kill() stops background processes; later calls fail", async () => {
    const s = await Sandbox.create("deckhand", { ...conn, metadata: { deckhandRunId: "r1" }, timeoutMs: 60_000 });
    const h = await s.commands.run("sleep 30", { background: true });
    // a descendant that escapes the process group is still found and killed
    await s.commands.run("setsid sleep 30 > /dev/null 2>&1 < /dev/null &");
    const pids = fake.pids(s.sandboxId);
    expect(pids.length).toBeGreaterThanOrEqual(2);
    expect(await s.kill()).toBe(true);
    await waitFor(() => !alive(h.pid) && pids.every((p) => !alive(p)));
    expect(fake.sandboxes().find((x) => x.id === s.sandboxId)!.state).toBe("killed");
    expect(await s.kill()).toBe(false); // 404 {"code":404,...} -> false
    expect(await s.isRunning()).toBe(false);
    const mine = await Sandbox.list({ ...conn, query: { metadata: { deckhandRunId: "r1" } } }).nextItems();
    expect(mine.map((x) => x.sandboxId)).not.toContain(s.sandboxId);
    const e = await caught(s.commands.run("echo hi"));
    // envd answers 502 for a dead sandbox, like E2B's proxy: a command start maps that to SandboxNotFoundError,
    // other envd calls to TimeoutError
    expect(e).toBeInstanceOf(SandboxNotFoundError);
    expect(e.message).toBe("Sandbox is probably not running anymore");
    expect(await caught(s.files.write("/home/user/x", "x"))).toBeInstanceOf(TimeoutError);
    expect(await caught(Sandbox.connect(s.sandboxId, conn))).toBeInstanceOf(SandboxNotFoundError);
    expect(await caught(Sandbox.getInfo(s.sandboxId, conn))).toBeInstanceOf(SandboxNotFoundError);
  });

  it("killSandboxFromOutside simulates a dead sandbox", async () => {
    const s = await Sandbox.create("deckhand", { ...conn, timeoutMs: 60_000 });
    const h = await s.commands.run("sleep 30", { background: true });
    fake.killSandboxFromOutside(s.sandboxId);
    await waitFor(() => !alive(h.pid));
    expect(await s.isRunning()).toBe(false);
    expect(await caught(s.files.read("/home/user/x"))).toBeInstanceOf(TimeoutError);
  });
});

describe("errors", () => {
  it("a wrong API key throws AuthenticationError", async () => {
    const e = await caught(Sandbox.create("deckhand", { ...conn, apiKey: "e2b_wrong" }));
    expect(e).toBeInstanceOf(AuthenticationError);
    expect(e.message).toMatch(/^Unauthorized, please check your credentials\./);
    expect(await caught(Sandbox.list({ ...conn, apiKey: "e2b_wrong" }).nextItems())).toBeInstanceOf(AuthenticationError);
  });

  it("an unknown template throws SandboxError '404: template ... not found'", async () => {
    const e = await caught(Sandbox.create("no-such-template", conn));
    expect(e).toBeInstanceOf(SandboxError);
    expect(e).not.toBeInstanceOf(SandboxNotFoundError);
    expect(e.message).toBe("404: template 'no-such-template' not found");
    expect((e as SandboxError).statusCode).toBe(404);
  });

  it("failNext injects quota and server errors", async () => {
    fake.failNext("create", 1, { status: 429, message: "concurrent sandbox limit reached" });
    const e = await caught(Sandbox.create("deckhand", conn));
    expect(e).toBeInstanceOf(RateLimitError);
    expect(e.message).toBe("Rate limit exceeded, please try again later - concurrent sandbox limit reached");

    fake.failNext("list", 2, { status: 500, message: "boom" });
    expect((await caught(Sandbox.list(conn).nextItems())).message).toBe("500: boom");
    expect((await caught(Sandbox.list(conn).nextItems())).message).toBe("500: boom");
    await Sandbox.list(conn).nextItems(); // the third one passes

    // with Retry-After the SDK retries a 429 by itself
    fake.failNext("*", 1, { status: 429, message: "slow down", retryAfter: 0 });
    const s = await Sandbox.create("deckhand", { ...conn, timeoutMs: 10_000 });
    expect(await Sandbox.kill(s.sandboxId, conn)).toBe(true);

    fake.failNext("kill", 1, { status: 503, message: "busy" });
    expect((await caught(Sandbox.kill("whatever", conn))).constructor.name).toBe("ServiceBusyError");
  });
});

describe("lifetime", () => {
  it("timeout expiry kills the sandbox; setTimeout extends it", async () => {
    const [short, extended] = await Promise.all([
      Sandbox.create("deckhand", { ...conn, timeoutMs: 1500 }),
      Sandbox.create("deckhand", { ...conn, timeoutMs: 1500 }),
    ]);
    const h = await short.commands.run("sleep 30", { background: true });
    // a foreground command in flight when the sandbox dies: the connection drops, the SDK's health check
    // sees 502 and throws TimeoutError
    const inFlight = caught(short.commands.run("sleep 30", { timeoutMs: 0 }));
    await extended.setTimeout(6000);
    const endAt = fake.sandboxes().find((x) => x.id === extended.sandboxId)!.endAt;
    expect(endAt - Date.now()).toBeGreaterThan(4000);

    await waitFor(() => fake.sandboxes().find((x) => x.id === short.sandboxId)!.state === "killed", 4000);
    await waitFor(() => !alive(h.pid));
    const e = await inFlight;
    expect(e).toBeInstanceOf(TimeoutError);
    expect(e.message).toMatch(/killed or reached its end of life/);
    expect(await short.isRunning()).toBe(false);
    expect(await caught(Sandbox.getInfo(short.sandboxId, conn))).toBeInstanceOf(SandboxNotFoundError);

    // past the original 1.5 s, the extended one is still up
    expect(await extended.isRunning()).toBe(true);
    expect((await extended.getInfo()).state).toBe("running");
    expect((await extended.commands.run("echo alive")).stdout).toBe("alive\n");
    await extended.kill();
  });

  it("lifecycle onTimeout 'pause' pauses instead of killing", async () => {
    const s = await Sandbox.create("deckhand", { ...conn, timeoutMs: 1000, lifecycle: { onTimeout: "pause" } });
    await waitFor(() => fake.sandboxes().find((x) => x.id === s.sandboxId)!.state === "paused", 4000);
    const back = await Sandbox.connect(s.sandboxId, { ...conn, timeoutMs: 30_000 });
    expect((await back.commands.run("echo back")).stdout).toBe("back\n");
    await back.kill();
  });
});
