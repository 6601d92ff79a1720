/**
 * What is particular to E2B, with the real `e2b` SDK against the fake E2B: failures in plain words (and which are
 * retried), lifetimes and their extension, pause while idle and resume, the template and its CLI.
 */
import fs from "node:fs";
import path from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.ts";
import { E2BSandboxProvider, type E2BProviderOptions } from "../../src/sandbox/e2b/e2b-provider.ts";
import { opencodeVersion, templateDockerfile } from "../../src/sandbox/e2b/template.ts";
import { opencodeBinary } from "../../src/sandbox/index.ts";
import { RUN_LABEL, SandboxError } from "../../src/sandbox/provider.ts";
import { type FakeE2B, startFakeE2B } from "../fakes/e2b/index.ts";
import { until } from "../helpers/until.ts";
import { scripts } from "../fakes/model-server.ts";
import { makeRepo, startTestServer } from "../helpers/harness.ts";

let fake: FakeE2B;
const made: E2BSandboxProvider[] = [];

function provider(over: Partial<E2BProviderOptions> = {}) {
  const p = new E2BSandboxProvider({
    apiKey: fake.apiKey,
    apiUrl: fake.apiUrl,
    sandboxUrl: fake.sandboxUrl,
    template: "deckhand",
    lifetimeMs: 120_000,
    pauseWhenIdle: true,
    opencodeBin: opencodeBinary(),
    ...over,
  });
  made.push(p);
  return p;
}

async function rejection(p: Promise<unknown>): Promise<SandboxError> {
  try {
    await p;
  } catch (e) {
    return e as SandboxError;
  }
  throw new Error("expected a rejection");
}

const spec = (runId = `r-${Math.random().toString(36).slice(2, 8)}`) => ({ runId, labels: { [RUN_LABEL]: runId }, timeoutMs: 60 * 60_000 });
const stateOf = (pid: number) => fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")[0];

beforeAll(async () => {
  fake = await startFakeE2B();
});
afterAll(async () => {
  await fake?.close();
});

describe("E2B failures reach the user in plain words", () => {
  it("a wrong API key: not retried", async () => {
    const e = await rejection(provider({ apiKey: "e2b_wrong" }).create(spec()));
    expect(e).toBeInstanceOf(SandboxError);
    expect(e).toMatchObject({ code: "auth", retryable: false });
    expect(e.message).toBe("E2B rejected the API key: check E2B_API_KEY (create one at https://e2b.dev/dashboard?tab=keys)");
  });

  it("an unknown template: not retried, names the template and the fix", async () => {
    const e = await rejection(provider({ template: "no-such-template" }).create(spec()));
    expect(e).toMatchObject({ code: "template_not_found", retryable: false });
    expect(e.message).toContain('"no-such-template" does not exist');
    expect(e.message).toContain("deckhand e2b template");
  });

  it("quota reached and E2B trouble: retried", async () => {
    fake.failNext("create", 1, { status: 429, message: "concurrent sandbox limit reached" });
    const q = await rejection(provider().create(spec()));
    expect(q).toMatchObject({ code: "quota", retryable: true });
    expect(q.message).toContain("concurrent sandbox limit reached");
    fake.failNext("create", 1, { status: 500, message: "boom" });
    expect(await rejection(provider().create(spec()))).toMatchObject({ code: "unavailable", retryable: true });
  });

  it("E2B unreachable: retried, says where", async () => {
    const e = await rejection(provider({ apiUrl: "http://127.0.0.1:9" }).create(spec()));
    expect(e).toMatchObject({ code: "unavailable", retryable: true });
    expect(e.message).toContain("Cannot reach E2B at http://127.0.0.1:9");
  });

  // The fake runs sandbox processes on this host (no VM), so only their own environments are checked here.
  it("no server secret reaches a process inside; a symlinked or oversized result file is refused", async () => {
    const mark = `ghp_MARK${Math.random().toString(36).slice(2)}`;
    process.env.GITHUB_TOKEN = mark;
    try {
      const sb = await provider().create(spec());
      const r = await sb.exec(["/bin/sh", "-c", "env"], { env: { ONLY_THIS: "1" } });
      expect(r.stdout).toContain("ONLY_THIS=1");
      expect(r.stdout).not.toContain(mark);
      await sb.exec(["/bin/sh", "-c", `mkdir -p ${sb.paths.control}; ln -s /etc/passwd ${sb.paths.control}/result.bundle; head -c 3000 /dev/zero > ${sb.paths.control}/huge`]);
      await expect(sb.readFile(`${sb.paths.control}/result.bundle`)).rejects.toMatchObject({ code: "bad_path" });
      await expect(sb.readFile(`${sb.paths.control}/huge`, 1000)).rejects.toMatchObject({ code: "too_large" });
    } finally {
      delete process.env.GITHUB_TOKEN;
    }
  });

  it("a sandbox that died: commands fail with 'stopped', get() answers null", async () => {
    const p = provider();
    const sb = await p.create(spec());
    fake.killSandboxFromOutside(sb.id);
    const e = await rejection(sb.exec(["true"]));
    expect(e).toMatchObject({ code: "not_found" });
    expect(e.message).toBe("The E2B sandbox stopped: it was killed or reached the end of its lifetime");
    expect(await p.get(sb.id)).toBeNull();
    expect(await p.destroy(sb.id)).toBe(false);
  });
});

describe("lifetime, pause and resume", () => {
  it("a sandbox lives min(run's limit, E2B_SANDBOX_TIMEOUT_SECONDS); extend pushes it out", async () => {
    const p = provider({ lifetimeMs: 120_000 });
    const sb = await p.create(spec());
    const endAt = () => fake.sandboxes().find((s) => s.id === sb.id)!.endAt - Date.now();
    expect(endAt()).toBeGreaterThan(100_000);
    expect(endAt()).toBeLessThanOrEqual(120_000);
    await sb.extend!(600_000);
    expect(endAt()).toBeGreaterThan(500_000);
    await p.destroy(sb.id);
  });

  it("suspendWhileIdle pauses (processes frozen, listed as paused); get() resumes with processes intact", async () => {
    const p = provider({ pauseWhenIdle: true });
    const sb = await p.create(spec());
    const { pid } = await sb.startBackground(["/bin/sh", "-c", "while true; do date +%s%N >> ticks; sleep 0.1; done"], { cwd: sb.paths.home, logFile: `${sb.paths.control}/ticks.log` });
    expect(await sb.suspendWhileIdle!()).toBe(true);
    expect((await p.list()).find((s) => s.id === sb.id)?.state).toBe("paused");
    // Stopped: a process caught in a disk write ('D') when the signal came stops as soon as the write ends.
    await until("the process stopped", () => stateOf(pid) === "T", 5000, 20);
    const woken = (await p.get(sb.id))!;
    expect(fake.sandboxes().find((s) => s.id === sb.id)!.state).toBe("running");
    expect(stateOf(pid)).not.toBe("T");
    const before = (await woken.readFile(`${sb.paths.home}/ticks`)).toString().split("\n").length;
    await new Promise((r) => setTimeout(r, 400));
    expect((await woken.readFile(`${sb.paths.home}/ticks`)).toString().split("\n").length).toBeGreaterThan(before);
    await p.destroy(sb.id);
  });

  it("with E2B_PAUSE_WHEN_IDLE=false an idle sandbox keeps running", async () => {
    const p = provider({ pauseWhenIdle: false });
    const sb = await p.create(spec());
    expect(await sb.suspendWhileIdle!()).toBe(false);
    expect(fake.sandboxes().find((s) => s.id === sb.id)!.state).toBe("running");
    await p.destroy(sb.id);
  });
});

describe("runs on E2B", () => {
  it("a bad E2B key makes the run fail with that reason, at once, without retries", async () => {
    const srv = await startTestServer({
      env: { SANDBOX_PROVIDER: "e2b", E2B_API_KEY: "e2b_wrong_key", E2B_API_URL: fake.apiUrl, E2B_SANDBOX_URL: fake.sandboxUrl, OPENCODE_BIN: opencodeBinary() },
    });
    try {
      const created = await srv.api("POST", "/api/runs", { repo: "demo", prompt: "anything" });
      const run = await srv.waitFor(created.body.id, ["failed", "idle"], 30_000);
      expect(run.status).toBe("failed");
      expect(run.reason).toContain("E2B rejected the API key: check E2B_API_KEY (create one at https://e2b.dev/dashboard?tab=keys)");
      expect(run.failureCode).toBe("sandbox_auth");
      expect(run.phases.filter((p: { phase: string }) => p.phase === "provision_attempt").length).toBe(1);
    } finally {
      // The harness lists sandboxes to clean up, which fails with this key: close the rest by hand.
      await srv.close().catch(async () => {
        await srv.deckhand.close();
        await srv.model.close();
      });
    }
  });

  it("the reaper extends the lifetime of a live run's sandbox (no pause: E2B_PAUSE_WHEN_IDLE=false)", async () => {
    const repo = makeRepo();
    const srv = await startTestServer({
      repos: { demo: repo.bare },
      handler: scripts.say("Nothing to change."),
      env: {
        SANDBOX_PROVIDER: "e2b",
        E2B_API_KEY: fake.apiKey,
        E2B_API_URL: fake.apiUrl,
        E2B_SANDBOX_URL: fake.sandboxUrl,
        OPENCODE_BIN: opencodeBinary(),
        E2B_PAUSE_WHEN_IDLE: "false",
        E2B_SANDBOX_TIMEOUT_SECONDS: "120",
      },
    });
    try {
      const created = await srv.api("POST", "/api/runs", { repo: "demo", prompt: "Look around" });
      const run = await srv.waitFor(created.body.id, ["idle", "failed"], 90_000);
      expect(run.status, run.reason).toBe("idle");
      const [sb] = await srv.deckhand.provider.list({ [RUN_LABEL]: run.id });
      const info = () => fake.sandboxes().find((s) => s.id === sb!.id)!;
      expect(info().state).toBe("running");
      const before = info().endAt;
      expect(before - Date.now()).toBeLessThanOrEqual(120_000);
      await new Promise((r) => setTimeout(r, 50));
      const report = await srv.deckhand.reaper.sweep();
      expect(report.extended).toContain(sb!.id);
      expect(info().endAt).toBeGreaterThan(before);
    } finally {
      await srv.close();
    }
  });
});

describe("the sandbox template", () => {
  it("pins the installed opencode version, and the checked-in Dockerfile is the template's", () => {
    const dockerfile = templateDockerfile();
    expect(dockerfile).toContain(`opencode-linux-x64@${opencodeVersion()}`);
    expect(dockerfile).toMatch(/^FROM node:20$/m);
    expect(fs.readFileSync(path.join(import.meta.dirname, "../../sandbox-template/e2b.Dockerfile"), "utf8")).toBe(dockerfile);
  });

  it("`deckhand e2b template --dockerfile` prints it; without E2B_API_KEY a build says what to do", async () => {
    const sink = () => {
      let text = "";
      const w = new Writable({ write: (c, _e, cb) => ((text += c.toString()), cb()) }) as unknown as NodeJS.WriteStream;
      return { w, text: () => text };
    };
    const out = sink();
    expect(await main(["e2b", "template", "--dockerfile"], out.w, sink().w)).toBe(0);
    expect(out.text()).toBe(templateDockerfile());
    const saved = process.env.E2B_API_KEY;
    delete process.env.E2B_API_KEY;
    try {
      const err = sink();
      expect(await main(["e2b", "template"], sink().w, err.w)).toBe(2);
      expect(err.text()).toContain("E2B_API_KEY is not set");
    } finally {
      if (saved !== undefined) process.env.E2B_API_KEY = saved;
    }
  });
});
