/**
 * A budget stops a real run mid-way (real OpenCode through the gateway): what the agent changed is delivered, the
 * run says why in plain words, and a follow-up with budget=+N continues it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { scripts } from "../fakes/model-server.ts";
import { startTestServer, type TestServer } from "../helpers/harness.ts";

describe("run budget", () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer({
      handler: scripts.writeFile("hello.txt", "hello\n", "I wrote hello.txt."),
      // $1000 per million tokens: OpenCode's short title request (hundreds of tokens) stays under the $1.50 budget,
      // its first turn (thousands of tokens: the tool list) goes over it, so the turn after the write is refused.
      env: { RUN_BUDGET_USD: "1.5", MODEL_PRICES: "m=1000/1000" },
    });
  }, 180_000);
  afterAll(async () => {
    await srv?.close();
  });

  it("stops the agent over budget, delivers its change, explains, and continues after budget=+N", async () => {
    const created = await srv.api("POST", "/api/runs", { repo: "demo", prompt: "Create hello.txt" });
    expect(created.status).toBe(201);
    const run = await srv.waitFor(created.body.id, ["idle", "failed", "cancelled"], 150_000);
    expect(run.status, run.reason).toBe("idle");
    // The first turn (the write) went through; the next call was refused.
    expect(run.result.filesChanged).toEqual([{ path: "hello.txt", additions: 1, deletions: 0 }]);
    expect(run.result.error).toMatchObject({ code: "over_budget" });
    expect(run.result.error.message).toMatch(/^Budget reached: this run spent \$[\d.]+ of its \$1\.50 limit\. To continue, reply to this run with budget=\+5/);
    expect(run.usage.cost).toBeGreaterThanOrEqual(1.5);
    const turns = srv.model.requests.length;

    expect((await srv.api("POST", `/api/runs/${run.id}/inputs`, { text: "budget=+100" })).status).toBe(202);
    const deadline = Date.now() + 150_000;
    let after = run;
    while (Date.now() < deadline) {
      after = (await srv.api("GET", `/api/runs/${run.id}`)).body;
      if (after.status === "idle" && after.result?.error == null && after.result?.summary === "I wrote hello.txt.") break;
      if (["failed", "cancelled", "closed"].includes(after.status)) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    expect(after.status, after.reason).toBe("idle");
    expect(after.result.error ?? null).toBeNull();
    expect(after.result.summary).toBe("I wrote hello.txt.");
    expect(srv.model.requests.length).toBeGreaterThan(turns);
  }, 330_000);
});
