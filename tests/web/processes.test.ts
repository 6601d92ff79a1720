/**
 * Two server processes on one Postgres: a session made by one is good on the other, and a change made through one
 * reaches a page watching through the other, live (LISTEN/NOTIFY through the RunBus).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freshPostgres, postgresAvailable, startTestServer, type TestServer } from "../helpers/harness.ts";

const havePg = await postgresAvailable();

describe.skipIf(!havePg)("the dashboard across server processes", () => {
  let pg: Awaited<ReturnType<typeof freshPostgres>>;
  let one: TestServer;
  let two: TestServer;

  beforeAll(async () => {
    pg = await freshPostgres();
    one = await startTestServer({ databaseUrl: pg.url, noReconciler: true });
    two = await startTestServer({ databaseUrl: pg.url, noReconciler: true });
  });
  afterAll(async () => {
    await one?.close();
    await two?.close();
    await pg?.drop();
  });

  it("a session from one process works on the other; a stop through one shows live on the other", async () => {
    const login = await fetch(`${one.url}/login`, {
      method: "POST",
      redirect: "manual",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: "test-api-token-0123456789", name: "Ana" }).toString(),
    });
    const cookie = login.headers.get("set-cookie")!.split(";")[0]!;
    const run = (await one.api("POST", "/api/runs", { repo: "demo", prompt: "Across processes" })).body;

    const page = await fetch(`${two.url}/runs/${run.id}`, { headers: { cookie } });
    expect(page.status).toBe(200);
    const csrf = /name="_csrf" value="([^"]+)"/.exec(await page.text())![1]!;

    // Watch through process two.
    const ac = new AbortController();
    const res = await fetch(`${two.url}/runs/${run.id}/events`, { headers: { cookie }, signal: ac.signal });
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let text = "";
    const readUntil = async (re: RegExp) => {
      const end = Date.now() + 10_000;
      while (!re.test(text) && Date.now() < end) {
        const { value, done } = await reader.read();
        if (done) break;
        text += dec.decode(value);
      }
      return re.test(text);
    };
    expect(await readUntil(/"status":"queued"/)).toBe(true);

    // Stop through process one (its session and CSRF token, made for process two's page).
    const stop = await fetch(`${one.url}/runs/${run.id}/stop`, {
      method: "POST",
      headers: { cookie, "content-type": "application/x-www-form-urlencoded", accept: "application/json", "x-csrf-token": csrf },
      body: "",
    });
    expect(stop.status).toBe(202);
    expect(await readUntil(/"status":"cancelled"[\s\S]*event: end/)).toBe(true);
    expect(text).toContain("Stopped by Ana (web)");
    ac.abort();
  });
});
