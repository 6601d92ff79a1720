/** The `deckhand` command line against a real server, as a user runs it (child processes, no TTY). */
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { scripts } from "../fakes/model-server.ts";
import { freePort, makeRepo, startTestServer, tmpDir, type TestServer } from "../helpers/harness.ts";

const BIN = path.resolve(import.meta.dirname, "../../bin/deckhand.mjs");

function cli(args: string[], env: Record<string, string>, timeoutMs = 120_000): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH!, HOME: process.env.HOME!, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (c) => (out += c));
    child.stderr.on("data", (c) => (err += c));
    const t = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`deckhand ${args.join(" ")} timed out\n${out}\n${err}`));
    }, timeoutMs);
    child.on("close", (code) => {
      clearTimeout(t);
      resolve({ code: code ?? 1, out, err });
    });
  });
}

describe("deckhand CLI", () => {
  let srv: TestServer;
  let env: Record<string, string>;

  beforeAll(async () => {
    let calls = 0;
    srv = await startTestServer({
      repos: { demo: makeRepo().bare },
      handler: (req) => {
        if (req.userTexts.at(-1)?.includes("break")) return { httpStatus: 401, message: "Incorrect API key provided" };
        calls++;
        return scripts.writeFile("notes.md", "# Notes\nfrom the agent\n", "Added notes.md.")(req);
      },
    });
    env = { DECKHAND_URL: srv.url, API_TOKEN: srv.deckhand.apiToken, DATA_DIR: srv.dataDir };
    void calls;
  });
  afterAll(async () => srv?.close());

  it("run: follows the run with plain progress lines and ends with a summary and exit code 0", async () => {
    const r = await cli(["run", "--repo", "demo", "Write notes.md"], env);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^Run r-\w+ started: http:\/\/127\.0\.0\.1:\d+\/r\/[\w-]+$/m);
    expect(r.out).toMatch(/^\[\d+s\] (queued|starting|working): /m);
    expect(r.out).not.toMatch(/\b(idle|provisioning|provision attempt|opencode ready)\b/);
    expect(r.out).toMatch(/✔ Done \(ready for review\) in \d+s/);
    expect(r.out).toContain("Added notes.md.");
    expect(r.out).toMatch(/notes\.md {2}\+2 -0/);
    expect(r.out).toMatch(/Tokens: \d+/);
    expect(r.out).toMatch(/Branch: deckhand\/write-notes-md-\w+ \(pushed\)/);
    expect(r.out).toMatch(/Run page: http/);
    const list = await cli(["runs"], env);
    expect(list.code).toBe(0);
    // Recorded as a CLI run, in the dashboard's plain words; an idle run's duration stops counting.
    expect(list.out).toMatch(/r-\w+ +ready for review +demo +cli /);
    const id = /Run (r-\w+)/.exec(r.out)![1]!;
    const listed = JSON.parse((await cli(["runs", "--json"], env)).out) as { id: string; durationMs: number; source: string }[];
    const mine = listed.find((x) => x.id === id)!;
    expect(mine.source).toBe("cli");
    await new Promise((res) => setTimeout(res, 1500));
    expect(JSON.parse((await cli(["runs", "--json"], env)).out).find((x: { id: string }) => x.id === id).durationMs).toBe(mine.durationMs);
    const status = await cli(["status", id, "--json"], env);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.out)).toMatchObject({ id, status: "idle", source: "cli" });
    const logs = await cli(["logs", id], env);
    expect(logs.code, logs.err).toBe(0);
    expect(logs.out).toMatch(/^\d\d:\d\d:\d\d agent: Added notes\.md\.$/m);
    expect(logs.out).toMatch(/— ready for review$/m);
    const open = await cli(["open", id], env);
    expect(open.out).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/r\/[\w-]+$/m);
  }, 300_000);

  it("run: a failing run exits non-zero with the reason, and its sandbox is destroyed", async () => {
    const r = await cli(["run", "--repo", "demo", "please break"], env);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/✘ Failed \(failed\).*The model provider rejected the API key/);
    const id = /Run (r-\w+)/.exec(r.out)![1]!;
    const end = Date.now() + 20_000;
    while ((await srv.deckhand.provider.list({ deckhandRunId: id })).length && Date.now() < end) await new Promise((res) => setTimeout(res, 200));
    expect(await srv.deckhand.provider.list({ deckhandRunId: id })).toEqual([]);
  }, 180_000);

  it("gives clear messages and non-zero exits for bad use", async () => {
    const noPrompt = await cli(["run", "--repo", "demo"], env);
    expect(noPrompt.code).toBe(2);
    expect(noPrompt.err).toMatch(/A prompt is required/);
    const unknownRepo = await cli(["run", "--repo", "nope", "x"], env);
    expect(unknownRepo.code).toBe(2);
    expect(unknownRepo.err).toMatch(/400: Unknown repo "nope"\. Allowed: demo/);
    const down = await cli(["runs"], { ...env, DECKHAND_URL: `http://127.0.0.1:${await freePort()}` });
    expect(down.code).toBe(2);
    expect(down.err).toMatch(/Cannot reach the Deckhand server.*npm start/);
    const bogus = await cli(["frobnicate"], env);
    expect(bogus.code).toBe(2);
    expect(bogus.err).toMatch(/Unknown command "frobnicate"/);
    const badConfig = await cli(["runs"], { ...env, PORT: "seventy" });
    expect(badConfig.code).toBe(2);
    expect(badConfig.err).toMatch(/PORT/);
  });
});

describe("deckhand serve and migrate on the embedded defaults", () => {
  it("migrate applies the migrations to a new PGlite database", async () => {
    const r = await cli(["migrate"], { DATA_DIR: tmpDir() });
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain("Migrations applied (pglite)");
  });

  it("serve starts with no keys, says what is missing in plain words, and answers /healthz", async () => {
    const port = await freePort();
    const dataDir = tmpDir();
    const child = spawn(process.execPath, [BIN, "serve"], { env: { PATH: process.env.PATH!, HOME: process.env.HOME!, PORT: String(port), HOST: "127.0.0.1", DATA_DIR: dataDir }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (c) => (out += c));
    child.stderr.on("data", (c) => (out += c));
    try {
      const end = Date.now() + 60_000;
      while (!out.includes("Deckhand is listening") && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
      expect(out).toContain("Deckhand is listening");
      expect(out).toContain("model: none configured");
      expect(out).toContain("repos: none");
      expect(out).toContain("slack: not configured");
      expect(out).toContain("linear: not configured");
      // Anyone learns that it is up; what it runs on only with the token (written 0600 in DATA_DIR, itself 0700).
      expect(await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()).toEqual({ ok: true });
      expect(fs.statSync(dataDir).mode & 0o777).toBe(0o700);
      const token = fs.readFileSync(path.join(dataDir, "api-token"), "utf8").trim();
      const health = await fetch(`http://127.0.0.1:${port}/healthz`, { headers: { authorization: `Bearer ${token}` } });
      expect(health.status).toBe(200);
      expect(await health.json()).toMatchObject({ ok: true, database: "pglite", sandbox: "local" });
      expect(out).toContain("set HOST=0.0.0.0 to listen on every interface");
    } finally {
      child.kill("SIGTERM");
      await new Promise((r) => child.on("close", r));
    }
  });
});
