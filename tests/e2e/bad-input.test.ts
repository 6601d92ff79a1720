/** Bad input gets a 4xx with a message; nothing is stored; the relay endpoints refuse wrong tokens. */
import http from "node:http";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runEvents, runs } from "../../src/db/schema.ts";
import { hashToken } from "../../src/runs/tokens.ts";
import { startTestServer, type TestServer } from "../helpers/harness.ts";
import { forceRunRow } from "../helpers/force-run-row.ts";

describe("bad input and relay authentication", () => {
  let srv: TestServer;
  const count = async () => Number(((await srv.deckhand.database.db.select({ n: sql<number>`count(*)` }).from(runs)) as any)[0].n);

  beforeAll(async () => {
    srv = await startTestServer({ noReconciler: true, env: { MAX_BODY_BYTES: "65536" } });
  });
  afterAll(async () => srv?.close());

  it("rejects malformed, oversized, incomplete and unauthorised run requests without storing anything", async () => {
    const cases: [string, unknown, number, RegExp][] = [
      ["malformed JSON", "{not json", 400, /JSON/i],
      ["missing prompt", { repo: "demo" }, 400, /prompt/],
      ["empty prompt", { repo: "demo", prompt: "  " }, 400, /prompt/],
      ["wrong type", { repo: "demo", prompt: 42 }, 400, /prompt/],
      ["unknown repo", { repo: "nope", prompt: "x" }, 400, /Unknown repo "nope".*demo/],
      ["bad ref", { repo: "demo", prompt: "x", ref: "a b;rm" }, 400, /ref/],
      ["oversized", { repo: "demo", prompt: "x".repeat(100_000) }, 413, /.+/],
    ];
    for (const [name, body, status, msg] of cases) {
      const r = await srv.api("POST", "/api/runs", body);
      expect(r.status, name).toBe(status);
      expect(String(r.body.error), name).toMatch(msg);
    }
    expect((await srv.api("POST", "/api/runs", { repo: "demo", prompt: "x" }, null)).status).toBe(401);
    expect((await srv.api("POST", "/api/runs", { repo: "demo", prompt: "x" }, "wrong-token-000000000")).status).toBe(401);
    expect(await count()).toBe(0);
    expect((await srv.api("GET", "/api/runs/r-doesnotexist")).status).toBe(404);
    expect((await fetch(`${srv.url}/healthz`)).status).toBe(200);
  });

  /**
   * A real HTTP client posting `bytes` to /api/runs. With `expectContinue` it sends `Expect: 100-continue` and the
   * body only after "100 Continue" (as curl does). Resolves with the status and body, or the socket error.
   */
  function bigPost(bytes: number, expectContinue: boolean): Promise<{ status?: number; body?: string; error?: string; continued: boolean }> {
    return new Promise((resolve) => {
      const body = Buffer.from(JSON.stringify({ repo: "demo", prompt: "x".repeat(bytes) }));
      const u = new URL(`${srv.url}/api/runs`);
      let continued = false;
      const req = http.request({
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: "POST",
        headers: { authorization: `Bearer ${srv.deckhand.apiToken}`, "content-type": "application/json", "content-length": body.length, ...(expectContinue ? { expect: "100-continue" } : {}) },
      });
      req.on("continue", () => {
        continued = true;
        req.end(body);
      });
      req.on("response", (res) => {
        let text = "";
        res.on("data", (c) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode, body: text, continued }));
        res.on("error", (e) => resolve({ error: e.message, continued }));
      });
      req.on("error", (e) => resolve({ error: (e as NodeJS.ErrnoException).code ?? e.message, continued }));
      if (!expectContinue) req.end(body);
    });
  }

  it("a 5 MB body gets 413 with a message, with and without `Expect: 100-continue`; nothing is stored", async () => {
    for (const expectContinue of [true, false]) {
      const r = await bigPost(5 * 1024 * 1024, expectContinue);
      expect(r.error, `expect: ${expectContinue}`).toBeUndefined();
      expect(r.status, `expect: ${expectContinue}`).toBe(413);
      expect(JSON.parse(r.body!).error).toMatch(/.+/);
      expect(r.continued, "no 100 Continue for a body that is refused").toBe(false);
    }
    // A body within the limit still gets its 100 Continue and is served.
    const ok = await bigPost(1000, true);
    expect(ok.continued).toBe(true);
    expect(ok.status).toBe(201);
    expect(await count()).toBe(1);
    await srv.deckhand.database.db.execute(sql`delete from runs`);
    expect((await fetch(`${srv.url}/healthz`)).status).toBe(200);
  });

  it("relay calls with a missing, wrong or other run's token get 401; a repeated batch is stored once", async () => {
    const store = srv.deckhand.store;
    const a = await store.create({ repo: "demo", prompt: "a", source: "api" });
    const b = await store.create({ repo: "demo", prompt: "b", source: "api" });
    await forceRunRow(store.db, a.id, { status: "running", relayTokenHash: hashToken("token-a") });
    await forceRunRow(store.db, b.id, { status: "running", relayTokenHash: hashToken("token-b") });
    const post = (runId: string, token: string | null, body: unknown) =>
      fetch(`${srv.url}/relay/v1/runs/${runId}/events`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify(body),
      });
    const ev = (seq: number) => ({ seq, type: "message.updated", at: new Date().toISOString(), data: { n: seq } });
    expect((await post(a.id, null, { events: [ev(1)] })).status).toBe(401);
    expect((await post(a.id, "token-x", { events: [ev(1)] })).status).toBe(401);
    expect((await post(a.id, "token-b", { events: [ev(1)] })).status).toBe(401);
    expect((await fetch(`${srv.url}/relay/v1/runs/${a.id}/commands?waitMs=0`)).status).toBe(401);

    const ok1 = await post(a.id, "token-a", { events: [ev(1), ev(2)] });
    expect(await ok1.json()).toEqual({ ackedSeq: 2 });
    const again = await post(a.id, "token-a", { events: [ev(1), ev(2)] });
    expect(await again.json()).toEqual({ ackedSeq: 2 });
    // Out of order: 4 before 3 is stored but not acknowledged past the gap.
    expect(await (await post(a.id, "token-a", { events: [ev(4)] })).json()).toEqual({ ackedSeq: 2 });
    expect(await (await post(a.id, "token-a", { events: [ev(3)] })).json()).toEqual({ ackedSeq: 4 });
    const rows = await srv.deckhand.database.db.select().from(runEvents).where(sql`${runEvents.runId} = ${a.id}`);
    expect(rows.map((r) => r.seq).sort()).toEqual([1, 2, 3, 4]);
    // Malformed batch: 400, nothing stored.
    expect((await post(a.id, "token-a", { events: [{ seq: -1, type: "", at: "x" }] })).status).toBe(400);
    // A finished run's token is dead.
    await store.transition(a.id, { type: "cancel", reason: "test" });
    expect((await post(a.id, "token-a", { events: [ev(5)] })).status).toBe(401);
  });
});
