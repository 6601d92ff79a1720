/**
 * Roles: one `web` process (HTTP only) and one `worker` process (reconciler, outbox, reaper) on one Postgres
 * database do a real run together: the run is created on the web, provisioned and delivered by the worker.
 */
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { scripts, startModelServer, type ModelServer } from "../fakes/model-server.ts";
import { spawnServer, type ChildServer, until } from "../faults/helpers.ts";
import { freePort, freshPostgres, makeRepo, postgresAvailable, tmpDir } from "../helpers/harness.ts";

const hasPg = await postgresAvailable();
const TOKEN = "roles-test-token-0123456789";

describe.skipIf(!hasPg)("a web and a worker process on one database", () => {
  let db: Awaited<ReturnType<typeof freshPostgres>>;
  let model: ModelServer;
  let web: ChildServer;
  let worker: ChildServer;

  beforeAll(async () => {
    db = await freshPostgres();
    model = await startModelServer({ handler: scripts.writeFile("notes.md", "# Notes\n", "Added notes.md.") });
    const [webPort, workerPort] = [await freePort(), await freePort()];
    const logs = tmpDir();
    const base = {
      HOST: "127.0.0.1",
      DATABASE_URL: db.url,
      API_TOKEN: TOKEN,
      REPOS: `demo=${makeRepo().bare}`,
      LLM_BASE_URL: model.baseUrl,
      LLM_MODEL: "m",
      LLM_API_KEY: "k",
      LOG_FORMAT: "json",
      HEARTBEAT_INTERVAL_SECONDS: "2",
      PUBLIC_URL: `http://127.0.0.1:${webPort}`,
    };
    web = await spawnServer({ ...base, PORT: String(webPort), DATA_DIR: tmpDir(), DECKHAND_ROLE: "web" }, path.join(logs, "web.log"), 200_000);
    worker = await spawnServer({ ...base, PORT: String(workerPort), DATA_DIR: tmpDir(), DECKHAND_ROLE: "worker" }, path.join(logs, "worker.log"), 200_000);
  }, 500_000);
  afterAll(async () => {
    await worker?.kill("SIGTERM");
    await web?.kill("SIGTERM");
    await model?.close();
    await db?.drop();
  });

  it("the web takes the request, the worker does the run", async () => {
    const auth = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };
    // The worker serves health and metrics only.
    expect((await fetch(`${worker.url}/api/runs`, { headers: auth })).status).toBe(404);
    expect(await (await fetch(`${worker.url}/livez`)).json()).toMatchObject({ ok: true, role: "worker" });
    expect((await fetch(`${worker.url}/readyz`)).status).toBe(200);
    const created = await (await fetch(`${web.url}/api/runs`, { method: "POST", headers: auth, body: JSON.stringify({ repo: "demo", prompt: "Write notes.md" }) })).json();
    const run = await until(
      "the run to be ready for review",
      async () => {
        const r = await (await fetch(`${web.url}/api/runs/${created.id}`, { headers: auth })).json();
        if (r.status === "failed") throw new Error(`run failed: ${r.reason}`);
        return r.status === "idle" ? r : null;
      },
      240_000,
      500,
    );
    expect(run.result.filesChanged.map((f: { path: string }) => f.path)).toEqual(["notes.md"]);
    const lines = (f: string) => fs.readFileSync(f, "utf8").split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { msg: string; runId?: string });
    const byWorker = lines(worker.logFile).filter((l) => l.runId === created.id).map((l) => l.msg);
    const byWeb = lines(web.logFile).filter((l) => l.runId === created.id).map((l) => l.msg);
    expect(byWorker).toContain("provisioning");
    expect(byWorker.some((m) => /result delivered/.test(m))).toBe(true);
    expect(byWeb).toContain("run created");
    expect(byWeb).not.toContain("provisioning");
  }, 300_000);

  it("SIGTERM: the worker stops cleanly within SHUTDOWN_TIMEOUT", async () => {
    const t0 = Date.now();
    await worker.kill("SIGTERM");
    expect(await worker.exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(30_000);
    expect(fs.readFileSync(worker.logFile, "utf8")).toMatch(/shutting down \(readiness is now 503\)/);
  }, 60_000);
});
