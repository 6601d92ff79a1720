/**
 * The run spine end to end: a prompt becomes an agent run in a real bubblewrap sandbox, with real OpenCode,
 * real git and a real database, driven by the scripted model.
 */
import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { scripts } from "../fakes/model-server.ts";
import { makeRepo, postgresAvailable, startTestServer, type TestServer } from "../helpers/harness.ts";

const hasPostgres = await postgresAvailable();

for (const database of ["pglite", "postgres"] as const) {
  describe.skipIf(database === "postgres" && !hasPostgres)(`run spine on ${database}`, () => {
    let srv: TestServer;
    let repo: ReturnType<typeof makeRepo>;

    beforeAll(async () => {
      repo = makeRepo({ "README.md": "# demo\n", "src/app.ts": "export const x = 1;\n" });
      // OpenCode's environment is read after the run went idle: keep it running (suspension: provider-contract).
      srv = await startTestServer({
        database,
        repos: { demo: repo.bare },
        handler: scripts.writeFile("hello.txt", "hello from the agent\n", "I wrote hello.txt."),
        env: { LOCAL_SUSPEND_WHEN_IDLE: "false" },
      });
    });
    afterAll(async () => {
      await srv?.close();
    });

    it("a run that writes a file ends idle with the file in the diff and on the pushed branch", async () => {
      const created = await srv.api("POST", "/api/runs", { repo: "demo", prompt: "Create hello.txt with a greeting" });
      expect(created.status).toBe(201);
      expect(created.body.url).toMatch(/\/r\/[\w-]{20,}$/);
      const run = await srv.waitFor(created.body.id, ["idle", "failed", "cancelled"], 90_000);
      expect(run.status, run.reason).toBe("idle");
      expect(run.result.filesChanged).toEqual([{ path: "hello.txt", additions: 1, deletions: 0 }]);
      expect(run.result.summary).toBe("I wrote hello.txt.");
      expect(run.result.pushed).toBe(true);
      expect(run.diff).toContain("+hello from the agent");
      // The branch landed on the remote with the agent's file.
      expect(repo.git(["show", `${run.branch}:hello.txt`])).toBe("hello from the agent");
      // Events stored in order with no gaps.
      const seqs = run.events.map((e: { seq: number }) => e.seq);
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
      expect(run.events.some((e: { type: string }) => e.type === "session.idle")).toBe(true);
      // Phases with timestamps.
      const phases = run.phases.map((p: { phase: string }) => p.phase);
      for (const p of ["queued", "provisioning", "sandbox_created", "repo_cloned", "opencode_ready", "running", "prompt_delivered", "idle"]) expect(phases).toContain(p);
      // The run page shows it, at its unguessable URL only.
      const page = await fetch(created.body.url);
      expect(page.status).toBe(200);
      const html = await page.text();
      expect(html).toContain("hello.txt");
      expect(html).toContain("I wrote hello.txt.");
      expect((await fetch(`${srv.url}/r/${run.id}`)).status).toBe(404);
      // The clone holds no credentials and the model key never reached the events.
      expect(JSON.stringify(run.events)).not.toContain("test-key");
      // The model was reached through the gateway: every request carried the server's real key...
      expect(srv.model.keys.length).toBeGreaterThanOrEqual(2);
      expect(new Set(srv.model.keys)).toEqual(new Set(["test-key"]));
      // ...while OpenCode in the sandbox holds only its per-run model token.
      const sandbox = (await srv.deckhand.provider.get(run.events && (await srv.deckhand.store.get(run.id))!.sandboxId!))!;
      const env = await sandbox.exec(["/bin/sh", "-c", `tr '\\0' '\\n' < /proc/$(cat ${sandbox.paths.control}/opencode.pid)/environ`]);
      expect(env.stdout).toContain("OPENCODE_CONFIG_CONTENT=");
      expect(env.stdout).toContain("/gateway/v1");
      expect(env.stdout).not.toContain("test-key");
      // Usage is what the provider reported, summed exactly.
      const reported = srv.model.usages;
      expect(run.usage).toMatchObject({
        input: reported.reduce((a, u) => a + u.prompt_tokens, 0),
        output: reported.reduce((a, u) => a + u.completion_tokens, 0),
      });
    }, 180_000);
  });
}
