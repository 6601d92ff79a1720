/**
 * The model gateway in front of an Anthropic provider, over real HTTP: a real Deckhand server configured with
 * MODEL=anthropic/… (no reconciler, no OpenCode: runs are set up by hand) and the scripted model server speaking
 * the Messages API. What OpenCode's Anthropic provider in a sandbox would do, done with fetch.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { hashToken, randomToken } from "../../src/runs/tokens.ts";
import { startModelServer, type ModelServer } from "../fakes/model-server.ts";
import { startTestServer, type TestServer } from "../helpers/harness.ts";
import { forceRunRow } from "../helpers/force-run-row.ts";

const REAL_KEY = "sk-ant-real-key-on-the-server";
let model: ModelServer;
let t: TestServer;

beforeAll(async () => {
  model = await startModelServer();
  t = await startTestServer({
    model,
    noReconciler: true,
    env: {
      LLM_BASE_URL: "",
      LLM_MODEL: "",
      LLM_API_KEY: "",
      MODEL: "anthropic/claude-haiku-4-5",
      ANTHROPIC_API_KEY: REAL_KEY,
      ANTHROPIC_BASE_URL: model.baseUrl,
      // $1000 / $2000 per million input / output tokens, $100 cache reads, $1250 cache writes; $1 per run.
      MODEL_PRICES: "claude-haiku-4-5=1000/2000/100/1250",
      RUN_BUDGET_USD: "1",
      GATEWAY_MAX_RETRIES: "0",
    },
  });
}, 180_000);
afterAll(async () => {
  await t?.close();
  await model?.close();
});
beforeEach(() => {
  model.setHandler(() => ({ text: "Hello from Claude, streamed in several pieces." }));
});

async function liveRun(): Promise<{ id: string; token: string }> {
  const created = await t.api("POST", "/api/runs", { repo: "demo", prompt: "do it", createdBy: "ana" });
  expect(created.status).toBe(201);
  const token = randomToken();
  await forceRunRow(t.deckhand.store.db, created.body.id, { status: "running", modelTokenHash: hashToken(token) });
  return { id: created.body.id, token };
}

/** As Anthropic's SDK sends it: the key in `x-api-key`. */
const messages = (token: string, body: Record<string, unknown> = {}, path = "/gateway/v1/messages") =>
  fetch(`${t.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": token, "anthropic-version": "2023-06-01" },
    body: JSON.stringify({ model: "claude-whatever", max_tokens: 1024, stream: true, messages: [{ role: "user", content: "hi" }], ...body }),
  });

async function recorded(id: string, requests: number): Promise<any> {
  for (let i = 0; i < 250 && ((await t.deckhand.store.get(id))?.modelRequests ?? 0) < requests; i++) await new Promise((r) => setTimeout(r, 20));
  return (await t.api("GET", `/api/runs/${id}`)).body;
}

describe("model gateway, Anthropic messages", () => {
  it("forwards with the real key in x-api-key, passes the stream through byte for byte, and sums usage exactly", async () => {
    const { id, token } = await liveRun();
    const from = model.usages.length;
    const r = await messages(token, { messages: [{ role: "user", content: "a question of some length" }] });
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toMatch(/event-stream/);
    const text = await r.text();
    expect(text).toBe(model.answers.at(-1));
    expect(text).toContain("event: message_delta");
    const sent = model.requests.at(-1)!;
    expect(sent).toMatchObject({ api: "messages", apiKey: REAL_KEY, apiKeyHeader: "x-api-key" });
    expect(sent.body.model).toBe("claude-haiku-4-5"); // the run's model, not what the agent asked for
    expect(model.keys).not.toContain(token);

    // A second call, not streamed: a `message` object with its usage.
    const plain = await messages(token, { stream: false, messages: [{ role: "user", content: "another, longer question for the model" }] });
    expect(plain.status).toBe(200);
    expect(await plain.text()).toBe(model.answers.at(-1));

    const reported = model.usages.slice(from);
    expect(reported).toHaveLength(2);
    const sum = (k: "prompt_tokens" | "completion_tokens" | "cache_read_tokens" | "cache_write_tokens") => reported.reduce((a, u) => a + (u[k] ?? 0), 0);
    const run = await recorded(id, 2);
    const usage = { input: sum("prompt_tokens"), output: sum("completion_tokens"), cacheRead: sum("cache_read_tokens"), cacheWrite: sum("cache_write_tokens") };
    expect(usage.cacheRead).toBeGreaterThan(0);
    expect(run.usage).toMatchObject(usage);
    expect(run.usage.cost).toBeCloseTo((usage.input * 1000 + usage.output * 2000 + usage.cacheRead * 100 + usage.cacheWrite * 1250) / 1e6, 9);
  });

  it("refuses a call over the run's budget in Anthropic's error shape, without calling the provider", async () => {
    const { token } = await liveRun();
    const big = await messages(token, { messages: [{ role: "user", content: "x".repeat(8000) }] });
    await big.text(); // ≈ 1000 new input tokens at $1000 per million: the $1 budget is spent
    const before = model.keys.length;
    const refused = await messages(token);
    expect(refused.status).toBe(402);
    const body = await refused.json();
    expect(body).toMatchObject({ type: "error", error: { type: "billing_error" } });
    expect(body.error.message).toMatch(/^Budget reached: this run spent \$\d+\.\d\d of its \$1\.00 limit\. To continue, reply to this run with budget=\+5/);
    expect(model.keys.length).toBe(before);
  });

  it("passes the provider's errors through in its shape, and names a rejected key without showing it", async () => {
    const { token } = await liveRun();
    model.setHandler(() => ({ httpStatus: 400, message: "prompt is too long: 210000 tokens > 200000 maximum" }));
    const tooLong = await messages(token);
    expect(tooLong.status).toBe(400);
    expect(await tooLong.json()).toEqual({ type: "error", error: { type: "invalid_request_error", message: "prompt is too long: 210000 tokens > 200000 maximum" } });

    model.setHandler(() => ({ httpStatus: 401, message: `invalid x-api-key ${REAL_KEY}` }));
    const rejected = await messages(token);
    expect(rejected.status).toBe(401);
    const text = await rejected.text();
    expect(JSON.parse(text)).toMatchObject({ type: "error", error: { type: "authentication_error" } });
    expect(text).toContain("rejected the API key configured on the Deckhand server (ANTHROPIC_API_KEY");
    expect(text).not.toContain(REAL_KEY);
  });

  it("refuses OpenAI routes with 404 and unknown tokens with 401, before reaching the provider", async () => {
    const { token } = await liveRun();
    const before = model.keys.length;
    expect((await messages(token, {}, "/gateway/v1/chat/completions")).status).toBe(404);
    expect((await messages(token, {}, "/gateway/v1/responses")).status).toBe(404);
    expect((await messages("not-a-model-token")).status).toBe(401);
    expect(model.keys.length).toBe(before);
  });
});
