/**
 * One contract for every sandbox provider: the local one (bubblewrap) and E2B (the real `e2b` SDK against the
 * fake of E2B's control plane + envd in tests/fakes/e2b). Same tests, same expectations, then a full run on each.
 */
import fs from "node:fs";
import path from "node:path";
import { Sandbox as SdkSandbox } from "e2b";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { opencodeBinary } from "../../src/sandbox/index.ts";
import { E2BSandboxProvider } from "../../src/sandbox/e2b/e2b-provider.ts";
import { LocalSandboxProvider } from "../../src/sandbox/local/local-provider.ts";
import { localSandboxRoot } from "../../src/sandbox/local/plan.ts";
import { OWNER_LABEL, RUN_LABEL, type Sandbox, type SandboxProvider } from "../../src/sandbox/provider.ts";
import { type FakeE2B, startFakeE2B } from "../fakes/e2b/index.ts";
import type { ModelHandler } from "../fakes/model-server.ts";
import { makeRepo, startTestServer, type TestServer, tmpDir } from "../helpers/harness.ts";
import { sandboxHostProcesses, stillRunning } from "../helpers/sandbox-procs.ts";

/** Host pids of live processes whose command line carries `token` (works through pid namespaces). */
function hostPids(token: string): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0");
      const stat = fs.readFileSync(`/proc/${name}/stat`, "utf8");
      if (cmd.includes(token) && !/\) Z /.test(stat)) out.push(Number(name));
    } catch {
      /* gone */
    }
  }
  return out;
}

async function until<T>(fn: () => Promise<T> | T, what: string, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const sleepToken = () => `${900 + Math.floor(Math.random() * 99)}.${Math.floor(Math.random() * 1e6)}`;
const runIdOf = () => `contract-${Math.random().toString(36).slice(2, 10)}`;

interface Target {
  name: string;
  setup(): Promise<{ provider: SandboxProvider; serverEnv: Record<string, string>; close(): Promise<void> }>;
}

let fake: FakeE2B;

const targets: Target[] = [
  {
    name: "local",
    async setup() {
      const provider = new LocalSandboxProvider({ dataDir: tmpDir(), opencodeBin: opencodeBinary(), suspendWhenIdle: true });
      return { provider, serverEnv: {}, close: async () => {} };
    },
  },
  {
    name: "e2b",
    async setup() {
      fake = await startFakeE2B();
      const provider = new E2BSandboxProvider({
        apiKey: fake.apiKey,
        apiUrl: fake.apiUrl,
        sandboxUrl: fake.sandboxUrl,
        template: "deckhand",
        lifetimeMs: 10 * 60_000,
        pauseWhenIdle: true,
        // The fake's "template" is this host: opencode and node are the host's.
        opencodeBin: opencodeBinary(),
      });
      return {
        provider,
        serverEnv: {
          SANDBOX_PROVIDER: "e2b",
          E2B_API_KEY: fake.apiKey,
          E2B_API_URL: fake.apiUrl,
          E2B_SANDBOX_URL: fake.sandboxUrl,
          OPENCODE_BIN: opencodeBinary(),
        },
        close: () => fake.close(),
      };
    },
  },
];

for (const target of targets) {
  describe(`sandbox provider contract: ${target.name}`, () => {
    let provider: SandboxProvider;
    let serverEnv: Record<string, string>;
    let close: () => Promise<void>;
    const made: string[] = [];
    const create = async (runId = runIdOf()) => {
      const sb = await provider.create({ runId, labels: { [RUN_LABEL]: runId }, timeoutMs: 5 * 60_000 });
      made.push(sb.id);
      return sb;
    };

    beforeAll(async () => {
      ({ provider, serverEnv, close } = await target.setup());
    });
    afterAll(async () => {
      for (const id of made) await provider.destroy(id).catch(() => false);
      await close?.();
    });

    describe("one sandbox", () => {
      let sb: Sandbox;
      beforeAll(async () => {
        sb = await create();
      });

      it("runs commands: exit code, stdout, stderr, cwd, env and arguments passed verbatim", async () => {
        expect(await sb.exec(["sh", "-c", "echo out; echo err >&2; exit 3"])).toEqual({ exitCode: 3, stdout: "out\n", stderr: "err\n" });
        expect((await sb.exec(["pwd"], { cwd: sb.paths.home })).stdout.trim()).toBe(sb.paths.home);
        expect((await sb.exec(["sh", "-c", 'printf %s "$FOO"'], { env: { FOO: "a b'c $HOME" } })).stdout).toBe("a b'c $HOME");
        expect((await sb.exec(["printf", "%s|", "a b", "it's", "$HOME", "*"])).stdout).toBe("a b|it's|$HOME|*|");
        expect((await sb.exec(["git", "--version"])).stdout).toMatch(/^git version/);
        expect((await sb.exec([sb.paths.nodeBin, "-e", "console.log(1 + 1)"])).stdout).toBe("2\n");
        expect((await sb.exec([sb.paths.opencodeBin, "--version"])).exitCode).toBe(0);
      });

      it("a background process returns at once, survives later exec calls, and logs to its file", async () => {
        const token = sleepToken();
        const log = `${sb.paths.control}/bg/sleep.log`;
        const t0 = Date.now();
        const { pid } = await sb.startBackground(["/bin/sh", "-c", `echo started; exec sleep ${token}`], { cwd: sb.paths.home, logFile: log });
        expect(Date.now() - t0).toBeLessThan(5000);
        expect(pid).toBeGreaterThan(0);
        await until(async () => (await sb.readFile(log)).toString().includes("started"), "the log line");
        expect((await sb.exec(["true"])).exitCode).toBe(0);
        await new Promise((r) => setTimeout(r, 300));
        expect(hostPids(token).length).toBeGreaterThan(0);
      });

      it("files round-trip, binary and text, and commands see them", async () => {
        const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
        await sb.writeFile(`${sb.paths.control}/files/all.bin`, bytes);
        expect(Buffer.compare(await sb.readFile(`${sb.paths.control}/files/all.bin`), bytes)).toBe(0);
        await sb.writeFile(`${sb.paths.control}/files/hello.txt`, "héllo\n");
        expect((await sb.exec(["cat", `${sb.paths.control}/files/hello.txt`])).stdout).toBe("héllo\n");
        await sb.writeFile(`${sb.paths.control}/files/run.sh`, "#!/bin/sh\necho ran\n", 0o755);
        expect((await sb.exec([`${sb.paths.control}/files/run.sh`])).stdout).toBe("ran\n");
        await sb.exec(["sh", "-c", "echo made-inside > inside.txt"], { cwd: sb.paths.home });
        expect((await sb.readFile(`${sb.paths.home}/inside.txt`)).toString()).toBe("made-inside\n");
      });
    });

    it("destroy really stops every process; the sandbox is gone afterwards", async () => {
      const sb = await create();
      const token = sleepToken();
      await sb.startBackground(["/bin/sh", "-c", `sleep ${token} & exec sleep ${token}`], { cwd: sb.paths.home, logFile: `${sb.paths.control}/x.log` });
      await until(() => hostPids(token).length === 2, "two processes");
      expect(await provider.destroy(sb.id)).toBe(true);
      await until(() => hostPids(token).length === 0, "the processes to die");
      expect(await provider.get(sb.id)).toBeNull();
      expect(await provider.destroy(sb.id)).toBe(false);
      expect((await provider.list()).map((s) => s.id)).not.toContain(sb.id);
    });

    it("get() reattaches to a live sandbox by id", async () => {
      const sb = await create();
      await sb.writeFile(`${sb.paths.control}/mark`, "here");
      const again = (await provider.get(sb.id))!;
      expect(again.id).toBe(sb.id);
      expect(again.paths).toEqual(sb.paths);
      expect((await again.readFile(`${sb.paths.control}/mark`)).toString()).toBe("here");
    });

    if (target.name !== "local") console.log(`[skip] ${target.name}: suspending by stopping processes is the local provider's; E2B pauses instead (tests/sandbox/e2b-provider.test.ts)`);
    it.skipIf(target.name !== "local")("an idle sandbox is suspended: every process stops, the last started first; get() starts it again, files kept", async () => {
      const sb = await create();
      const token = sleepToken();
      const order = `${sb.paths.control}/order.log`;
      // Each records its SIGTERM. The relay is started after OpenCode: it must be stopped first.
      for (const name of ["first", "second"]) {
        await sb.startBackground(["/bin/sh", "-c", `trap 'echo ${name} >> ${order}; exit 0' TERM; sleep ${token} & wait`], { cwd: sb.paths.home, logFile: `${sb.paths.control}/${name}.log` });
      }
      await until(() => hostPids(token).length === 2, "two processes");
      await sb.writeFile(`${sb.paths.home}/kept.txt`, "kept");
      expect(await sb.suspendWhileIdle!()).toBe(true);
      expect(hostPids(token)).toEqual([]);
      expect((await sb.readFile(order)).toString()).toBe("second\nfirst\n");
      const state = async () => (await provider.list()).find((s) => s.id === sb.id)?.state;
      expect(await state()).toBe("paused");
      const woken = (await provider.get(sb.id))!;
      expect(woken.stoppedWhileIdle).toBe(true);
      expect((await woken.exec(["cat", `${sb.paths.home}/kept.txt`])).stdout).toBe("kept");
      expect(hostPids(token)).toEqual([]); // its processes are the caller's to start again
      await woken.processesRestarted!();
      expect((await provider.get(sb.id))!.stoppedWhileIdle).toBe(false);
      expect(await state()).toBe("running");
    });

    it("list finds only our sandboxes, by run label", async () => {
      const [a, b] = [runIdOf(), runIdOf()];
      const sa = await create(a);
      const sbb = await create(b);
      let foreign: string | null = null;
      if (target.name === "e2b") {
        // Somebody else's sandbox in the same E2B team: no deckhand label.
        foreign = (await SdkSandbox.create("deckhand", { apiKey: fake.apiKey, apiUrl: fake.apiUrl, sandboxUrl: fake.sandboxUrl, metadata: { [RUN_LABEL]: a } })).sandboxId;
      }
      expect((await provider.list({ [RUN_LABEL]: a })).map((s) => s.id)).toEqual([sa.id]);
      const all = await provider.list();
      expect(all.map((s) => s.id)).toEqual(expect.arrayContaining([sa.id, sbb.id]));
      for (const s of all) expect(s.labels[OWNER_LABEL]).toBe("1");
      if (foreign) {
        expect(all.map((s) => s.id)).not.toContain(foreign);
        await SdkSandbox.kill(foreign, { apiKey: fake.apiKey, apiUrl: fake.apiUrl } as Parameters<typeof SdkSandbox.kill>[1]);
      }
    });

    describe("a full run", () => {
      let srv: TestServer;
      let repo: ReturnType<typeof makeRepo>;
      // Turn 1 writes one.txt; a follow-up mentioning "again" writes two.txt, once `releaseFollowUp()` is called.
      let releaseFollowUp!: () => void;
      const followUpHeld = new Promise<void>((r) => (releaseFollowUp = r));
      const handler: ModelHandler = async (req) => {
        if (req.lastRole === "tool") return { text: "Done." };
        const last = req.userTexts.at(-1) ?? "";
        if (last.includes("again")) await followUpHeld;
        return { toolCalls: [{ name: "write", arguments: { filePath: last.includes("again") ? "two.txt" : "one.txt", content: "from the agent\n" } }] };
      };

      beforeAll(async () => {
        repo = makeRepo();
        srv = await startTestServer({ repos: { demo: repo.bare }, handler, env: serverEnv });
      });
      afterAll(async () => {
        await srv?.close();
      });

      it("runs end to end in the provider's sandbox, follow-up included, and leaves no sandbox behind", async () => {
        expect(srv.deckhand.provider.name).toBe(target.name);
        const created = await srv.api("POST", "/api/runs", { repo: "demo", prompt: "Write one.txt" });
        expect(created.status).toBe(201);
        const run = await srv.waitFor(created.body.id, ["idle", "failed", "cancelled"], 90_000);
        expect(run.status, run.reason).toBe("idle");
        expect(run.result.filesChanged).toEqual([{ path: "one.txt", additions: 1, deletions: 0 }]);
        expect(repo.git(["show", `${run.branch}:one.txt`])).toBe("from the agent");
        const phases = run.phases.map((p: { phase: string }) => p.phase);
        for (const p of ["sandbox_created", "repo_cloned", "opencode_started", "relay_started", "opencode_ready", "prompt_delivered", "idle"]) expect(phases).toContain(p);

        const ours = await srv.deckhand.provider.list({ [RUN_LABEL]: run.id });
        expect(ours.length).toBe(1);
        if (target.name === "e2b") {
          const info = fake.sandboxes().find((s) => s.id === ours[0]!.id)!;
          expect(info.metadata).toMatchObject({ [RUN_LABEL]: run.id, [OWNER_LABEL]: "1" });
          // E2B_PAUSE_WHEN_IDLE (default true): the idle run's sandbox is paused during the keep-alive.
          await until(() => fake.sandboxes().find((s) => s.id === info.id)!.state === "paused", "the idle sandbox to be paused");
        }

        const sandboxDir = path.join(localSandboxRoot(srv.dataDir, process.getuid!()), ours[0]!.id);
        const relayOrOpencode = () => sandboxHostProcesses(sandboxDir, run.id).filter((p) => /relay\.mjs|opencode serve/.test(p.cmdline));
        if (target.name === "local") {
          // LOCAL_SUSPEND_WHEN_IDLE (default true): the idle run holds no process on the host at all.
          await until(async () => (await srv.deckhand.provider.list({ [RUN_LABEL]: run.id }))[0]?.state === "paused", "the idle sandbox to be suspended", 30_000);
          expect(sandboxHostProcesses(sandboxDir, run.id)).toEqual([]);
        }

        // A follow-up wakes the (paused) sandbox and the agent carries on in the same clone and OpenCode session.
        const follow = await srv.api("POST", `/api/runs/${run.id}/inputs`, { text: "Now write two.txt again" });
        expect(follow.status).toBeLessThan(300);
        await srv.waitFor(run.id, ["running", "failed"], 30_000);
        const again = (await until(() => srv.model.requests.find((r) => r.userTexts.includes("Now write two.txt again")), "the follow-up to reach the model", 90_000))!;
        // The model sees the earlier conversation: the first prompt and the agent's first turn.
        expect(again.userTexts).toEqual(["Write one.txt", "Now write two.txt again"]);
        expect(again.toolResults.length).toBeGreaterThanOrEqual(1);
        const during = target.name === "local" ? sandboxHostProcesses(sandboxDir, run.id) : [];
        if (target.name === "local") {
          expect(relayOrOpencode().length, "OpenCode and the relay run again").toBeGreaterThanOrEqual(2);
          expect(during.map((p) => p.comm)).toEqual(expect.arrayContaining(["bwrap", expect.stringMatching(/^pas(ta|st)/)]));
        }
        releaseFollowUp();
        const second = await srv.waitFor(run.id, ["idle", "failed", "cancelled"], 90_000);
        if (target.name === "local") {
          // Suspended again: not one of the processes of that turn is left (pasta and bwrap included).
          await until(async () => (await srv.deckhand.provider.list({ [RUN_LABEL]: run.id }))[0]?.state === "paused", "the sandbox to be suspended again", 30_000);
          expect(during.filter(stillRunning)).toEqual([]);
          expect(sandboxHostProcesses(sandboxDir, run.id)).toEqual([]);
        }
        expect(second.status, second.reason).toBe("idle");
        expect(second.result.filesChanged.map((f: { path: string }) => f.path).sort()).toEqual(["one.txt", "two.txt"]);
        expect(repo.git(["show", `${run.branch}:two.txt`])).toBe("from the agent");
        expect(new Set(second.events.map((e: any) => e.data?.sessionID).filter(Boolean)).size).toBe(1);

        // The reaper kills a sandbox whose run is unknown and leaves the live run's sandbox alone.
        const stray = await srv.deckhand.provider.create({ runId: "no-such-run", labels: { [RUN_LABEL]: "no-such-run" } });
        const report = await srv.deckhand.reaper.sweep();
        expect(report.killed).toContainEqual({ id: stray.id, runId: "no-such-run", reason: "its run no-such-run is unknown" });
        expect(report.killed.map((k) => k.id)).not.toContain(ours[0]!.id);
        expect((await srv.deckhand.provider.list({ [RUN_LABEL]: run.id })).map((s) => s.id)).toEqual([ours[0]!.id]);
        expect(await srv.deckhand.provider.get(stray.id)).toBeNull();

        // Stopping the run releases its sandbox.
        expect((await srv.api("POST", `/api/runs/${run.id}/stop`)).status).toBeLessThan(300);
        await until(async () => (await srv.deckhand.provider.list({ [RUN_LABEL]: run.id })).length === 0, "the sandbox to be destroyed", 20_000);
        if (target.name === "e2b") expect(fake.sandboxes().find((s) => s.id === ours[0]!.id)!.state).toBe("killed");
      }, 300_000); // two turns of real OpenCode in a hardened sandbox (each command enters through setpriv and nsenter)
    });
  });
}
