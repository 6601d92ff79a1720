/** Steering, follow-ups and stop, through the API, with real sandboxes and OpenCode. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ModelHandler } from "../fakes/model-server.ts";
import { makeRepo, postgresAvailable, startTestServer, type TestServer } from "../helpers/harness.ts";

const database = (await postgresAvailable()) ? "postgres" : "pglite";

/** A model whose first turn waits until `release()`; later turns write a file named after the last user text. */
function heldModel() {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let firstSeen!: () => void;
  const seen = new Promise<void>((r) => (firstSeen = r));
  const handler: ModelHandler = async (req) => {
    const last = req.userTexts.at(-1) ?? "";
    if (req.lastRole === "tool") return { text: `Done: ${last}` };
    if (req.userTexts.length === 1) {
      firstSeen();
      await gate;
      return { toolCalls: [{ name: "write", arguments: { filePath: "first.txt", content: "one\n" } }] };
    }
    const name = `${last.replace(/[^a-z]+/gi, "-").toLowerCase().slice(0, 20)}.txt`;
    return { toolCalls: [{ name: "write", arguments: { filePath: name, content: `${last}\n` } }] };
  };
  return { handler, release: () => release(), seen };
}

describe("steering and stopping runs", () => {
  let srv: TestServer;
  let repo: ReturnType<typeof makeRepo>;
  let model = heldModel();

  beforeAll(async () => {
    repo = makeRepo();
    srv = await startTestServer({ database, repos: { demo: repo.bare }, handler: (r) => model.handler(r) });
  });
  afterAll(async () => srv?.close());

  it("a follow-up queued while the run works reaches the same OpenCode session", async () => {
    model = heldModel();
    const { body } = await srv.api("POST", "/api/runs", { repo: "demo", prompt: "Write first.txt" });
    await model.seen; // the agent is busy thinking on the first prompt
    const steer = await srv.api("POST", `/api/runs/${body.id}/inputs`, { text: "also add steer" });
    expect(steer.status).toBe(202);
    model.release();
    const run = await srv.waitFor(body.id, ["idle", "failed"], 90_000);
    expect(run.status, run.reason).toBe("idle");
    // The model saw the follow-up in the same conversation (both user texts in one request).
    expect(srv.model.requests.some((r) => r.userTexts.includes("Write first.txt") && r.userTexts.includes("also add steer"))).toBe(true);
    const sessions = new Set(run.events.map((e: any) => e.data?.sessionID).filter(Boolean));
    expect(sessions.size).toBe(1);
    expect(run.result.filesChanged.map((f: any) => f.path).sort()).toEqual(["also-add-steer.txt", "first.txt"]);
  });

  it("follow-ups sent right after creating a run reach the agent after the task, in the order sent", async () => {
    const task = "Ordered task: write first.txt";
    const follow = ["ordered follow-up one", "ordered follow-up two"];
    model = { handler: () => ({ text: "noted" }), release: () => {}, seen: Promise.resolve() };
    const { body } = await srv.api("POST", "/api/runs", { repo: "demo", prompt: task });
    for (const text of follow) expect((await srv.api("POST", `/api/runs/${body.id}/inputs`, { text })).status).toBe(202);
    const end = Date.now() + 90_000;
    const mine = () => srv.model.requests.filter((r) => [task, ...follow].some((t) => r.userTexts.includes(t)));
    while (!mine().some((r) => r.userTexts.includes(follow[1]!)) && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
    // The first thing the model sees is the task; the last request holds every input, in the order sent.
    expect(mine()[0]!.userTexts[0]).toBe(task);
    expect(mine().at(-1)!.userTexts).toEqual([task, ...follow]);
    await srv.api("POST", `/api/runs/${body.id}/stop`);
  }, 120_000);

  it("a follow-up after the run went idle continues it on the same branch", async () => {
    model = heldModel();
    model.release();
    const { body } = await srv.api("POST", "/api/runs", { repo: "demo", prompt: "Write first.txt" });
    const first = await srv.waitFor(body.id, ["idle", "failed"], 90_000);
    expect(first.status, first.reason).toBe("idle");
    const more = await srv.api("POST", `/api/runs/${body.id}/inputs`, { text: "now second" });
    expect(more.status).toBe(202);
    // It works again, then goes idle with both changes on the same branch.
    await srv.waitFor(body.id, ["running"], 30_000).catch(() => undefined);
    const end = Date.now() + 90_000;
    let run: any;
    do {
      run = (await srv.api("GET", `/api/runs/${body.id}`)).body;
      if (run.status === "idle" && run.result?.filesChanged?.length === 2) break;
      await new Promise((r) => setTimeout(r, 300));
    } while (Date.now() < end);
    expect(run.result.filesChanged.map((f: any) => f.path).sort()).toEqual(["first.txt", "now-second.txt"]);
    expect(run.branch).toBe(first.branch);
    expect(repo.git(["show", `${run.branch}:now-second.txt`])).toBe("now second");
    expect(repo.git(["show", `${run.branch}:first.txt`])).toBe("one");
  });

  it("stop cancels a working run and kills its sandbox", async () => {
    model = heldModel(); // never released: the agent stays busy
    const { body } = await srv.api("POST", "/api/runs", { repo: "demo", prompt: "Write first.txt" });
    await model.seen;
    const running = (await srv.api("GET", `/api/runs/${body.id}`)).body;
    expect(running.status).toBe("running");
    const sandboxes = await srv.deckhand.provider.list({ deckhandRunId: body.id });
    expect(sandboxes).toHaveLength(1);
    const stop = await srv.api("POST", `/api/runs/${body.id}/stop`);
    expect(stop.status).toBe(202);
    const run = await srv.waitFor(body.id, ["cancelled"], 10_000);
    expect(run.reason).toMatch(/Stopped by/);
    // The sandbox is destroyed and the relay's token is dead.
    const end = Date.now() + 15_000;
    while ((await srv.deckhand.provider.list({ deckhandRunId: body.id })).length && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
    expect(await srv.deckhand.provider.list({ deckhandRunId: body.id })).toHaveLength(0);
    expect(await srv.deckhand.provider.get(sandboxes[0]!.id)).toBeNull();
    const after = await srv.api("POST", `/api/runs/${body.id}/inputs`, { text: "more" });
    expect(after.status).toBe(409);
    model.release();
  });
});
