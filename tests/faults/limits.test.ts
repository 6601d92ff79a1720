/**
 * Limits and respawn loops: a failing sandbox provider (the fake E2B answering 500) makes provisioning retry a
 * bounded number of times, opens the circuit breaker (said in /healthz and to waiting Linear users; on Postgres a
 * second server on the same database, which saw no failure, says the same in its /healthz and metrics), and every
 * run still ends, failed with the reason. Per-repo concurrency queues a run with its position on the run view and
 * in Linear, and starts it only when its repo has room.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mountLinear } from "../../src/integrations/linear/index.ts";
import { mountSlack } from "../../src/integrations/slack/index.ts";
import { opencodeBinary } from "../../src/sandbox/index.ts";
import { type FakeE2B, startFakeE2B } from "../fakes/e2b/index.ts";
import { type FakeLinear, startFakeLinear } from "../fakes/linear.ts";
import type { ModelHandler } from "../fakes/model-server.ts";
import { type FakeSlack, startFakeSlack } from "../fakes/slack.ts";
import { makeRepo, postgresAvailable, startTestServer, type TestServer } from "../helpers/harness.ts";
import { gate, sleep, until } from "./helpers.ts";
import { linearEnv, linearSession, slackEnv, slackMention, TEAM } from "./surfaces.ts";

const database = (await postgresAvailable()) ? "postgres" : "pglite";

describe(`a provider that keeps failing (${database})`, () => {
  let e2b: FakeE2B;
  let linear: FakeLinear;
  let slack: FakeSlack;
  let srv: TestServer;
  /** On Postgres: a second server (HTTP only) on the same database; it must tell the same breaker story. */
  let other: TestServer | null = null;

  beforeAll(async () => {
    e2b = await startFakeE2B();
    e2b.failNext("create", 1000, { status: 500, message: "E2B is having a bad day" });
    linear = await startFakeLinear();
    linear.addTeam(TEAM);
    slack = await startFakeSlack();
    const env = {
      SANDBOX_PROVIDER: "e2b",
      E2B_API_KEY: e2b.apiKey,
      E2B_API_URL: e2b.apiUrl,
      E2B_SANDBOX_URL: e2b.sandboxUrl,
      OPENCODE_BIN: opencodeBinary(),
      MAX_CONCURRENT_RUNS: "1",
      PROVISION_MAX_ATTEMPTS: "2",
      PROVIDER_BREAKER_THRESHOLD: "3",
      PROVIDER_BREAKER_COOLDOWN_SECONDS: "4",
    };
    srv = await startTestServer({ database, env: { ...env, ...slackEnv(slack), ...linearEnv(linear) }, mount: async (d) => {
        await mountLinear(d);
        await mountSlack(d);
      },
    });
    if (database === "postgres") {
      other = await startTestServer({ databaseUrl: srv.deckhand.config.DATABASE_URL, noReconciler: true, env: { ...env, DECKHAND_ROLE: "web" } });
    }
  });
  afterAll(async () => {
    await other?.close();
    await srv?.close();
    await e2b?.close();
    await linear?.close();
    await slack?.close();
  });

  it("bounded retries with backoff, then failed with the reason; the breaker opens, says so, and stops new sandboxes", async () => {
    const creates = () => e2b.calls.filter((c) => c.plane === "api" && c.method === "POST" && /^\/(v2\/)?sandboxes$/.test(c.path)).length;
    const t0 = Date.now();
    const ids = [];
    for (const p of ["first", "second"]) ids.push((await srv.api("POST", "/api/runs", { repo: "demo", prompt: p })).body.id as string);
    const session = linearSession(linear, "third, from Linear");
    expect((await session.deliver(srv.url)).status).toBe(200);
    const third = await until("the Linear run", async () => (await srv.deckhand.store.list({ source: "linear" }))[0]);
    ids.push(third.id);
    const mention = slackMention(slack, "fourth, from Slack");
    expect((await mention.deliver(srv.url)).status).toBe(200);
    const fourth = await until("the Slack run", async () => (await srv.deckhand.store.list({ source: "slack" }))[0]);
    ids.push(fourth.id);

    // The Linear user waiting in the queue hears why: first the queue, then the paused provider.
    const paused = await until("a thought saying new sandboxes are paused", () => session.activities().find((a) => a.content.type === "thought" && /New sandboxes are paused/.test(a.content.body)), 30_000);
    expect(paused.content.body).toMatch(/the e2b sandbox provider failed \d+ times in a row \(last: .*E2B is having a bad day/);
    expect(session.activities().some((a) => a.content.type === "thought" && /^Queued \(position \d\)/.test(a.content.body))).toBe(true);
    // Slack's status message says it too (posted, then edited in place).
    const slackSaid = (re: RegExp) => slack.calls.some((c) => /^chat\.(postMessage|update)$/.test(c.method) && c.args.channel === mention.env.event.channel && re.test(JSON.stringify(c.args.blocks ?? [])));
    await until("the Slack status saying new sandboxes are paused", () => slackSaid(/New sandboxes are paused/), 30_000);

    // /healthz says so, and while the breaker is open no sandbox is asked for.
    const health = await srv.api("GET", "/healthz");
    expect(health.status).toBe(200);
    if (health.body.sandboxBreaker.state === "open") {
      expect(health.body.sandboxBreaker.message).toMatch(/New sandboxes are paused/);
      if (other) {
        // The other server saw no failure itself: it reads the same breaker row, so it says the same.
        const asked = Date.now();
        const theirs = (await other.api("GET", "/healthz")).body.sandboxBreaker;
        const retryAt = new Date(health.body.sandboxBreaker.retryAt).getTime();
        expect(theirs).toMatchObject({ retryAt: health.body.sandboxBreaker.retryAt, lastError: health.body.sandboxBreaker.lastError, message: expect.stringMatching(/^New sandboxes are paused: the e2b sandbox provider failed \d+ times in a row/) });
        if (asked < retryAt - 100) expect(theirs.state).toBe("open");
        const metrics = await (await fetch(`${other.url}/metrics`, { headers: { authorization: `Bearer ${other.deckhand.apiToken}` } })).text();
        expect(metrics).toMatch(/deckhand_sandbox_breaker_state\{provider="e2b"\} [12]/);
      }
      const before = creates();
      const untilRetry = new Date(health.body.sandboxBreaker.retryAt).getTime() - Date.now();
      await sleep(Math.max(0, Math.min(untilRetry - 300, 3000)));
      expect(creates()).toBe(before);
    } else throw new Error(`expected an open breaker, got ${JSON.stringify(health.body.sandboxBreaker)}`);

    // Every run still ends: failed, with the provider's words, after at most PROVISION_MAX_ATTEMPTS tries each.
    for (const id of ids) {
      const run = await srv.waitFor(id, ["failed", "idle"], 60_000);
      expect(run.status).toBe("failed");
      expect(run.reason).toMatch(/E2B is having a bad day/);
      expect(run.phases.filter((p: { phase: string }) => p.phase === "provision_attempt").length).toBeLessThanOrEqual(2);
    }
    // At least the breaker's threshold of tries, never more than PROVISION_MAX_ATTEMPTS per run.
    expect(creates()).toBeGreaterThanOrEqual(3);
    expect(creates()).toBeLessThanOrEqual(2 * ids.length);
    const err = await until("the Linear error activity", () => session.activities().find((a) => a.content.type === "error"), 30_000);
    expect(err.content.body).toMatch(/E2B is having a bad day/);
    console.log(`[faults] failing provider: ${ids.length} runs failed after ${creates()} create calls in ${Date.now() - t0} ms; breaker ${JSON.stringify((await srv.api("GET", "/healthz")).body.sandboxBreaker.state)}`);
  }, 120_000);
});

describe(`per-repo concurrency and the queue position (${database})`, () => {
  let linear: FakeLinear;
  let srv: TestServer;
  const holds = new Map<string, ReturnType<typeof gate>>();
  const handler: ModelHandler = async (req) => {
    const name = /HOLD:(\w+)/.exec(req.userTexts.join(" "))?.[1] ?? "file";
    if (req.lastRole === "tool") return { text: `Done with ${name}.` };
    await holds.get(name)?.p;
    return { toolCalls: [{ name: "write", arguments: { filePath: `${name}.txt`, content: `${name}\n` } }] };
  };

  beforeAll(async () => {
    linear = await startFakeLinear();
    linear.addTeam(TEAM);
    srv = await startTestServer({
      database,
      handler,
      repos: { demo: makeRepo().bare, other: makeRepo().bare },
      env: { MAX_CONCURRENT_RUNS: "3", REPO_MAX_CONCURRENT_RUNS: "1", ...linearEnv(linear, "demo") },
      mount: (d) => mountLinear(d),
    });
  });
  afterAll(async () => {
    for (const g of holds.values()) g.open();
    await srv?.close();
    await linear?.close();
  });

  it("a second run on a busy repo waits (position and reason on the run view and in Linear) while another repo's run starts", async () => {
    holds.set("demoone", gate());
    holds.set("otherone", gate());
    const d1 = (await srv.api("POST", "/api/runs", { repo: "demo", prompt: "HOLD:demoone" })).body.id as string;
    const o1 = (await srv.api("POST", "/api/runs", { repo: "other", prompt: "HOLD:otherone" })).body.id as string;
    await until("both at the model", () => ["demoone", "otherone"].every((n) => srv.model.requests.some((r) => r.userTexts.join(" ").includes(`HOLD:${n}`))), 60_000);

    const session = linearSession(linear, "HOLD:demotwo");
    expect((await session.deliver(srv.url)).status).toBe(200);
    const d2 = await until("the Linear run", async () => (await srv.deckhand.store.list({ source: "linear" }))[0]);
    const view = (await srv.api("GET", `/api/runs/${d2.id}`)).body;
    expect(view.status).toBe("queued");
    expect(view.queue).toMatchObject({ position: 1, waitingFor: "repo_capacity", repoActive: 1, repoLimit: 1, active: 2, limit: 3 });
    const thought = await until("the queued thought", () => session.activities().find((a) => a.content.type === "thought" && /^Queued/.test(a.content.body)), 10_000);
    expect(thought.content.body).toBe("Queued (position 1): 1 of 1 runs allowed on demo are working; this one starts when one finishes.");
    await sleep(2000);
    expect((await srv.deckhand.store.get(d2.id))!.status).toBe("queued"); // still waiting for demo

    holds.get("demoone")!.open();
    const first = await srv.waitFor(d1, ["idle", "failed"], 60_000);
    expect(first.status).toBe("idle");
    const second = await srv.waitFor(d2.id, ["idle", "failed"], 90_000);
    expect(second.status, second.reason).toBe("idle");
    expect((await srv.api("GET", `/api/runs/${d2.id}`)).body.queue).toBeNull();
    // demo never had two runs at once: the second started provisioning after the first went idle.
    const at = (run: any, phase: string) => new Date(run.phases.find((p: any) => p.phase === phase).at).getTime();
    expect(at(second, "provisioning")).toBeGreaterThanOrEqual(at(first, "idle"));
    holds.get("otherone")!.open();
    expect((await srv.waitFor(o1, ["idle", "failed"], 60_000)).status).toBe("idle");
    expect(session.activities().filter((a) => /^Queued/.test(a.content.body ?? ""))).toHaveLength(1);
  }, 150_000);
});
