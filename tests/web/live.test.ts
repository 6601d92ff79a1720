/**
 * Live pages (server-sent events) over real HTTP, no sandbox (the test plays the relay): 50 people watching one
 * run all get the same update after one new event, and the run's fragment was rendered once for all of them; a
 * wake-up with nothing new sends nothing; the 51st viewer of a run is refused; the runs list's stream is shared too.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashToken } from "../../src/runs/tokens.ts";
import { postgresAvailable, startTestServer, type TestServer } from "../helpers/harness.ts";
import { parsePrometheus } from "../ops/prom-text.ts";
import { forceRunRow } from "../helpers/force-run-row.ts";

const VIEWERS = 50;
const database = (await postgresAvailable()) ? "postgres" : "pglite";

/** An open event stream: the frames (`event: ...`) it received, in order; `next` waits for one matching. */
class Stream {
  frames: string[] = [];
  private buf = "";
  private waiters: { test: (f: string) => boolean; resolve: (f: string) => void }[] = [];
  constructor(readonly ac: AbortController, res: Response) {
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    void (async () => {
      for (;;) {
        const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
        if (done) return;
        this.buf += dec.decode(value, { stream: true });
        let i: number;
        while ((i = this.buf.indexOf("\n\n")) >= 0) {
          const f = this.buf.slice(0, i);
          this.buf = this.buf.slice(i + 2);
          if (!f.startsWith("event: ")) continue; // retry: and keep-alive comments
          this.frames.push(f);
          this.waiters = this.waiters.filter((w) => (w.test(f) ? (w.resolve(f), false) : true));
        }
      }
    })();
  }
  next(test: (f: string) => boolean): Promise<string> {
    const had = this.frames.find(test);
    if (had) return Promise.resolve(had);
    return new Promise((resolve) => this.waiters.push({ test, resolve }));
  }
}

describe(`live pages (${database})`, () => {
  let srv: TestServer;
  const streams: Stream[] = [];

  const open = async (path: string, cookie?: string): Promise<Stream | number> => {
    const ac = new AbortController();
    const res = await fetch(`${srv.url}${path}`, { signal: ac.signal, headers: cookie ? { cookie } : {} });
    if (res.status !== 200) return res.status;
    const s = new Stream(ac, res);
    streams.push(s);
    return s;
  };
  const counter = async (name: string, kind: string) => {
    const res = await fetch(`${srv.url}/metrics`, { headers: { authorization: `Bearer ${srv.deckhand.apiToken}` } });
    return parsePrometheus(await res.text()).find((s) => s.name === name && s.labels.kind === kind)?.value ?? 0;
  };
  const renders = () => counter("deckhand_live_renders_total", "run");
  const unchanged = () => counter("deckhand_live_unchanged_total", "run");
  const push = (runId: string, token: string, seq: number, text: string) =>
    fetch(`${srv.url}/relay/v1/runs/${runId}/events`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ events: [{ seq, type: "message.part.updated", at: new Date().toISOString(), data: { part: { type: "text", id: `p${seq}`, messageID: "m1", text } } }] }),
    });

  beforeAll(async () => {
    srv = await startTestServer({ database, noReconciler: true, env: { MAX_LIVE_PER_RUN: String(VIEWERS), MAX_LIVE_TOTAL: String(VIEWERS + 10) } });
  });
  afterAll(async () => {
    for (const s of streams) s.ac.abort();
    await srv?.close();
  });

  it("50 viewers of one run: rendered once for all of them, the same update to each after one new event, nothing when nothing changed", async () => {
    const token = "relay-token-live-0123456789";
    const run = await srv.deckhand.store.create({ repo: "demo", prompt: "Watched by fifty", source: "api" });
    await forceRunRow(srv.deckhand.store.db, run.id, { status: "running", relayTokenHash: hashToken(token) });
    expect((await push(run.id, token, 1, "first words")).status).toBe(200);

    const before = await renders();
    const viewers: Stream[] = [];
    for (let i = 0; i < VIEWERS; i++) viewers.push((await open(`/r/${run.pageToken}/events`)) as Stream);
    // Everyone has the page's state (title and the first words)...
    for (const v of viewers) expect(await v.next((f) => f.startsWith("event: update"))).toMatch(/Watched by fifty[\s\S]*first words/);
    // ...rendered once for all fifty.
    expect((await renders()) - before).toBe(1);
    // The 51st is refused, with a message.
    const over = await fetch(`${srv.url}/r/${run.pageToken}/events`);
    expect(over.status).toBe(429);
    expect(((await over.json()) as { error: string }).error).toMatch(/too many live connections to this run \(50\)/);

    // A wake-up with nothing new (as another process's notification would be): nothing rendered, nothing sent.
    const framesBefore = viewers.map((v) => v.frames.length);
    const quiet = await unchanged();
    await srv.deckhand.bus.changed(run.id);
    for (let i = 0; i < 100 && (await unchanged()) === quiet; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await unchanged()).toBeGreaterThan(quiet);
    expect(viewers.map((v) => v.frames.length)).toEqual(framesBefore);

    // One new event: the same update reaches all fifty, from one render.
    expect((await push(run.id, token, 2, "the second step is done")).status).toBe(200);
    const got = await Promise.all(viewers.map((v) => v.next((f) => f.includes("the second step is done"))));
    expect(new Set(got).size).toBe(1);
    expect(got[0]).toMatch(/^event: update\ndata: /);
    // Only what changed is sent: the new timeline item, not the first one again.
    expect(got[0]).not.toContain("first words");
    expect((await renders()) - before).toBe(2);
    // And nothing arrived in between: the frame after the first snapshot is this update.
    for (const [i, v] of viewers.entries()) expect(v.frames.length, `viewer ${i}`).toBe(framesBefore[i]! + 1);
  }, 60_000);

  it("the runs list's stream: a new run shows up for every viewer, from one render", async () => {
    const login = await fetch(`${srv.url}/login`, {
      method: "POST",
      redirect: "manual",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: srv.deckhand.apiToken, name: "Ana" }).toString(),
    });
    const cookie = login.headers.get("set-cookie")!.split(";")[0]!;
    const lists = [(await open("/events", cookie)) as Stream, (await open("/events", cookie)) as Stream];
    for (const l of lists) await l.next((f) => f.startsWith("event: update"));
    const before = await counter("deckhand_live_renders_total", "list");
    await srv.api("POST", "/api/runs", { repo: "demo", prompt: "A new run for the list" });
    const got = await Promise.all(lists.map((l) => l.next((f) => f.includes("A new run for the list"))));
    expect(got[0]).toBe(got[1]);
    expect((await counter("deckhand_live_renders_total", "list")) - before).toBe(1);
  }, 30_000);
});
