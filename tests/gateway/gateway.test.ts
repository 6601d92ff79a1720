/**
 * The model gateway over real HTTP: a real Deckhand server (no reconciler: runs are set up by hand, so no OpenCode
 * is needed) in front of the scripted model server. What a sandbox would do, done with fetch.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { hashToken, randomToken } from "../../src/runs/tokens.ts";
import { startModelServer, type ModelServer } from "../fakes/model-server.ts";
import { startTestServer, type TestServer } from "../helpers/harness.ts";
import { forceRunRow } from "../helpers/force-run-row.ts";

let model: ModelServer;
let t: TestServer;

beforeAll(async () => {
  model = await startModelServer();
  t = await startTestServer({
    model,
    noReconciler: true,
    env: { MODELS: "m,m2", MODEL_PRICES: "m=1000/2000,m2=100/200", RUN_BUDGET_USD: "1", GATEWAY_MAX_RETRY_WAIT_SECONDS: "3" },
  });
}, 60_000);
afterAll(async () => {
  await t?.close();
  await model?.close();
});
beforeEach(() => {
  model.setHandler(() => ({ text: "Hello from the model, in several chunks." }));
});

/** A live run with a model token, as provisioning leaves it. */
async function liveRun(body: Record<string, unknown> = {}): Promise<{ id: string; token: string }> {
  const created = await t.api("POST", "/api/runs", { repo: "demo", prompt: "do it", createdBy: "ana", ...body });
  expect(created.status).toBe(201);
  const token = randomToken();
  await forceRunRow(t.deckhand.store.db, created.body.id, { status: "running", modelTokenHash: hashToken(token) });
  return { id: created.body.id, token };
}

/** The run as the API shows it once `requests` model calls are recorded (usage is written after each response). */
async function recorded(id: string, requests: number): Promise<any> {
  for (let i = 0; i < 250 && ((await t.deckhand.store.get(id))?.modelRequests ?? 0) < requests; i++) await new Promise((r) => setTimeout(r, 20));
  return (await t.api("GET", `/api/runs/${id}`)).body;
}

const chat = (token: string | null, body: Record<string, unknown> = {}, init: RequestInit = {}) =>
  fetch(`${t.url}/gateway/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ model: "whatever-the-agent-says", stream: true, messages: [{ role: "user", content: "hi" }], ...body }),
    ...init,
  });

/** SSE data payloads without the per-answer id/created fields. */
const payloads = (sse: string) =>
  sse
    .split("\n")
    .filter((l) => l.startsWith("data: "))
    .map((l) => l.slice(6))
    .map((d) => (d === "[DONE]" ? d : JSON.stringify({ ...JSON.parse(d), id: 0, created: 0 })));

describe("model gateway", () => {
  it("refuses requests without a valid model token, before reaching the provider", async () => {
    const before = model.keys.length;
    expect((await chat(null)).status).toBe(401);
    expect((await chat("not-a-token")).status).toBe(401);
    const r = await chat("x".repeat(5000));
    expect(r.status).toBe(401);
    expect(await r.json()).toMatchObject({ error: "missing or invalid model token" });
    expect(model.keys.length).toBe(before);
  });

  it("forwards with the real key and the run's model, streaming the provider's answer through unchanged", async () => {
    const { token } = await liveRun({ model: "m2" });
    const r = await chat(token);
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toMatch(/event-stream/);
    const viaGateway = await r.text();
    expect(model.keys.at(-1)).toBe("test-key");
    expect(model.requests.at(-1)!.body.model).toBe("m2");
    expect(model.requests.at(-1)!.body.stream_options).toEqual({ include_usage: true });
    // The same request straight to the provider gives the same stream (ids and timestamps aside).
    const direct = await fetch(`${model.baseUrl}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer test-key" },
      body: JSON.stringify(model.requests.at(-1)!.body),
    });
    expect(payloads(viaGateway)).toEqual(payloads(await direct.text()));
  });

  it("sums usage and cost per run exactly as the provider reported it, and per person, repo and day", async () => {
    const { id, token } = await liveRun({ model: "m2" });
    const from = model.usages.length;
    for (const content of ["one", "two two", "three three three"]) {
      const r = await chat(token, { messages: [{ role: "user", content }] });
      await r.text();
    }
    const reported = model.usages.slice(from);
    expect(reported).toHaveLength(3);
    const input = reported.reduce((a, u) => a + u.prompt_tokens, 0);
    const output = reported.reduce((a, u) => a + u.completion_tokens, 0);
    const run = await recorded(id, 3);
    expect(run.usage).toMatchObject({ input, output, cacheRead: 0, cacheWrite: 0 });
    // m2 costs $100 / $200 per million tokens: whole micro-dollars.
    expect(run.usage.cost).toBeCloseTo((input * 100 + output * 200) / 1e6, 9);
    expect(run.model).toBe("m2");
    const day = (await t.api("GET", "/api/usage")).body;
    expect(day.byPerson.find((p: any) => p.person === "ana").input).toBeGreaterThanOrEqual(input);
    expect(day.byRepo.find((p: any) => p.repo === "demo").requests).toBeGreaterThanOrEqual(3);
    expect((await t.api("GET", "/api/usage", undefined, null)).status).toBe(401);
  });

  it("forwards OpenAI Responses calls, streamed and not, byte for byte, and sums their usage exactly", async () => {
    const { id, token } = await liveRun({ model: "m2" });
    const from = model.usages.length;
    const responses = (body: Record<string, unknown>) =>
      fetch(`${t.url}/gateway/v1/responses`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify({ model: "whatever-the-agent-says", input: [{ role: "user", content: [{ type: "input_text", text: "hi there" }] }], ...body }),
      });
    const streamed = await responses({ stream: true });
    expect(streamed.status).toBe(200);
    expect(streamed.headers.get("content-type")).toMatch(/event-stream/);
    const text = await streamed.text();
    expect(text).toBe(model.answers.at(-1));
    expect(text).toContain("event: response.completed");
    const sent = model.requests.at(-1)!;
    expect(sent).toMatchObject({ api: "responses", apiKey: "test-key", apiKeyHeader: "authorization", userTexts: ["hi there"] });
    expect(sent.body.model).toBe("m2");
    expect(sent.body.stream_options).toBeUndefined(); // chat completions only
    const plain = await responses({ input: "a plain string input, a little longer" });
    expect(plain.status).toBe(200);
    expect(await plain.text()).toBe(model.answers.at(-1));

    const reported = model.usages.slice(from);
    expect(reported).toHaveLength(2);
    const input = reported.reduce((a, u) => a + u.prompt_tokens, 0);
    const cacheRead = reported.reduce((a, u) => a + (u.cache_read_tokens ?? 0), 0);
    const output = reported.reduce((a, u) => a + u.completion_tokens, 0);
    expect(cacheRead).toBeGreaterThan(0);
    const run = await recorded(id, 2);
    expect(run.usage).toMatchObject({ input, output, cacheRead, cacheWrite: 0 });
    // m2: $100 / $200 per million, cache reads a tenth of the input price.
    expect(run.usage.cost).toBeCloseTo((input * 100 + output * 200 + cacheRead * 10) / 1e6, 9);
    // An OpenAI-kind server has no Anthropic route.
    expect((await fetch(`${t.url}/gateway/v1/messages`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${token}` }, body: "{}" })).status).toBe(404);
  });

  it("refuses calls over the run's budget in plain words; budget=+5 in a follow-up lets the run continue", async () => {
    const { id, token } = await liveRun(); // model m: $1000 per million input tokens, budget $1
    await (await chat(token, { messages: [{ role: "user", content: "x".repeat(4000) }] })).text();
    const before = model.keys.length;
    // Right away: the call just answered counts, even before its usage is written.
    const refused = await chat(token);
    expect(refused.status).toBe(402);
    const spent = (await recorded(id, 1)).usage.cost;
    expect(spent).toBeGreaterThanOrEqual(1);
    const err = (await refused.json()).error;
    expect(err.message).toMatch(/^Budget reached: this run spent \$\d+\.\d\d of its \$1\.00 limit\. To continue, reply to this run with budget=\+5/);
    expect(model.keys.length).toBe(before); // the provider was not called
    expect((await t.api("POST", `/api/runs/${id}/inputs`, { text: "budget=+5" })).status).toBe(202);
    const inputs = await t.deckhand.store.inputs(id);
    expect(inputs.at(-1)).toMatchObject({ kind: "prompt", text: "Continue." });
    expect((await chat(token)).status).toBe(200);
  });

  it("refuses a stopped run's token at once, though the gateway remembers it", async () => {
    const { id, token } = await liveRun();
    for (let i = 0; i < 3; i++) expect((await chat(token)).status).toBe(200);
    expect((await t.api("POST", `/api/runs/${id}/stop`)).status).toBe(202);
    const refused = await chat(token);
    expect(refused.status).toBe(401);
    expect((await refused.json()).error).toMatch(/is cancelled: its model token is no longer valid/);
  });

  it("aborts the upstream stream within a second when the run is stopped, and when the client goes away", async () => {
    model.setHandler(() => ({ text: "slow ".repeat(400), chunkDelayMs: 100 }));
    const { id, token } = await liveRun();
    const r = await chat(token);
    const reader = r.body!.getReader();
    await reader.read(); // streaming has begun
    const aborts = model.aborts.length;
    const stoppedAt = Date.now();
    expect((await t.api("POST", `/api/runs/${id}/stop`)).status).toBe(202);
    while (model.aborts.length === aborts && Date.now() - stoppedAt < 5000) await new Promise((res) => setTimeout(res, 20));
    expect(model.aborts.length).toBe(aborts + 1);
    expect(model.aborts.at(-1)! - stoppedAt).toBeLessThan(1000);
    // The stopped run's token no longer works.
    expect((await chat(token)).status).toBe(401);

    const second = await liveRun();
    const ac = new AbortController();
    const r2 = await chat(second.token, {}, { signal: ac.signal });
    await r2.body!.getReader().read();
    const goneAt = Date.now();
    ac.abort();
    while (model.aborts.length === aborts + 1 && Date.now() - goneAt < 5000) await new Promise((res) => setTimeout(res, 20));
    expect(model.aborts.at(-1)! - goneAt).toBeLessThan(1000);
  });

  it("retries a 429 after its Retry-After, and names a rejected key without showing it", async () => {
    let calls = 0;
    model.setHandler(() => (++calls === 1 ? { httpStatus: 429, message: "slow down", retryAfter: "1" } : { text: "ok" }));
    const { token } = await liveRun();
    const startedAt = Date.now();
    const r = await chat(token);
    expect(r.status).toBe(200);
    expect(await r.text()).toContain('"ok"');
    expect(calls).toBe(2);
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(900);

    model.setHandler(() => ({ httpStatus: 401, message: "Incorrect API key provided: test-key" }));
    const bad = await chat(token);
    expect(bad.status).toBe(401);
    const text = await bad.text();
    expect(text).toContain("The model provider rejected the API key configured on the Deckhand server (LLM_API_KEY");
    expect(text).not.toContain("test-key");
  });

  it("lets a run pick an allowed model and lists the allowed ones otherwise", async () => {
    const bad = await t.api("POST", "/api/runs", { repo: "demo", prompt: "x", model: "gpt-9" });
    expect(bad).toMatchObject({ status: 400, body: { error: 'Unknown model "gpt-9". Allowed models: m, m2' } });
    const viaText = await t.api("POST", "/api/runs", { repo: "demo", prompt: "fix it model=m2" });
    const run = (await t.api("GET", `/api/runs/${viaText.body.id}`)).body;
    expect(run).toMatchObject({ model: "m2", prompt: "fix it" });
  });
});
