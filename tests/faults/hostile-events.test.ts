/**
 * Hostile and large events, pushed over real HTTP with a run's own relay token (the agent can read it): a tool
 * named `constructor`, todos `[null]`, a numeric `content`; a 2 MB tool output; a seq of 1,000,000; more events
 * than a run may store. The runs list, the run page, the API and the run's Slack thread keep working for everyone;
 * large parts are cut with a visible marker; a far seq is refused with nothing stored; a run over its event limit
 * ends with the reason. No sandbox: the test plays the relay.
 */
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mountSlack } from "../../src/integrations/slack/index.ts";
import { hashToken } from "../../src/runs/tokens.ts";
import { type FakeSlack, startFakeSlack } from "../fakes/slack.ts";
import { startTestServer, type TestServer } from "../helpers/harness.ts";
import { until } from "./helpers.ts";
import { CHANNEL, slackEnv } from "./surfaces.ts";
import { forceRunRow } from "../helpers/force-run-row.ts";
import type { SourceRef } from "../../src/runs/model.ts";

const MAX_RUN_EVENTS = 300;
const MAX_EVENT_BYTES = 64 * 1024;
const MAX_LIVE_PER_RUN = 3;
const MAX_LIVE_TOTAL = 5;

describe("hostile and large events from a sandbox", () => {
  let srv: TestServer;
  let slack: FakeSlack;
  let n = 0;

  /** A run in `running` with a relay token, as if its sandbox were up. */
  async function runningRun(source: "api" | "slack" = "api") {
    const token = `relay-token-hostile-${++n}-0123456789`;
    const sourceRef: SourceRef = source === "slack" ? { channel: CHANNEL, threadTs: `1700000000.00010${n}`, messageTs: `1700000000.00010${n}` } : {};
    const run = await srv.deckhand.store.create({ repo: "demo", prompt: `hostile ${n}`, source, sourceRef });
    await forceRunRow(srv.deckhand.store.db, run.id, { status: "running", relayTokenHash: hashToken(token) });
    return { id: run.id, token, pageToken: run.pageToken };
  }
  const push = (runId: string, token: string, events: unknown[]) =>
    fetch(`${srv.url}/relay/v1/runs/${runId}/events`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify({ events }) });
  const ev = (seq: number, type: string, data: Record<string, unknown>) => ({ seq, type, at: new Date().toISOString(), data });
  const stored = async (runId: string) => {
    const r = (await srv.deckhand.database.db.execute(sql`select count(*)::int as n from run_events where run_id = ${runId}`)) as any;
    return Number((Array.isArray(r) ? r : r.rows)[0].n);
  };
  async function signIn(): Promise<string> {
    const res = await fetch(`${srv.url}/login`, { method: "POST", redirect: "manual", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams({ token: srv.deckhand.apiToken, name: "Ana", next: "/" }).toString() });
    expect(res.status).toBe(303);
    return res.headers.get("set-cookie")!.split(";")[0]!;
  }

  beforeAll(async () => {
    slack = await startFakeSlack();
    srv = await startTestServer({ noReconciler: true, env: { ...slackEnv(slack), MAX_RUN_EVENTS: String(MAX_RUN_EVENTS), MAX_EVENT_BYTES: String(MAX_EVENT_BYTES), MAX_LIVE_PER_RUN: String(MAX_LIVE_PER_RUN), MAX_LIVE_TOTAL: String(MAX_LIVE_TOTAL) }, mount: (d) => mountSlack(d) });
  });
  afterAll(async () => {
    await srv?.close();
    await slack?.close();
  });

  it("a tool named `constructor`, todos [null] and a numeric content break nothing: runs list, run page, API, Slack", async () => {
    const { id, token, pageToken } = await runningRun("slack");
    const res = await push(id, token, [
      ev(1, "session.status", { status: { type: "busy" } }),
      ev(2, "todo.updated", { todos: [null, { content: 42, status: "in_progress" }, { content: { toString: 1 }, status: "constructor" }] }),
      ev(3, "message.part.updated", { part: { type: "tool", callID: "constructor", tool: "constructor", state: { status: "running", input: { command: "rm -rf /" } } } }),
      ev(4, "message.updated", { info: { id: "__proto__", role: "assistant", tokens: { input: "7", output: { toString: 1 } }, error: { name: "constructor", data: { statusCode: { valueOf: 1 } } } } }),
    ]);
    expect(res.status).toBe(200);
    expect((await res.json()).ackedSeq).toBe(4);

    const cookie = await signIn();
    const list = await fetch(`${srv.url}/`, { headers: { cookie } });
    expect(list.status).toBe(200);
    expect(await list.text()).toContain("hostile");
    const page = await fetch(`${srv.url}/r/${pageToken}`);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain("Using constructor");
    expect(html).toContain("42");
    const one = await srv.api("GET", `/api/runs/${id}`);
    expect(one.status).toBe(200);
    expect(one.body.currentAction).toBe("Using constructor rm -rf /");
    expect(one.body.todos).toEqual([{ content: "42", status: "in_progress" }]);
    expect((await srv.api("GET", "/api/runs")).status).toBe(200);
    expect((await srv.api("GET", `/api/runs/${id}/events?after=0&waitMs=0`)).status).toBe(200);
    // The run's Slack thread gets its status message with the plan, in plain words.
    const post = await slack.waitFor((c) => /^chat\.(postMessage|update)$/.test(c.method) && JSON.stringify(c.args).includes("Using constructor"), 10_000);
    expect(JSON.stringify(post.args)).toContain("42");
  });

  it("a 2 MB tool output is stored cut to the limit with a visible marker; the page shows the start of it", async () => {
    const { id, token, pageToken } = await runningRun();
    const output = `first line of a huge output\n${"y".repeat(2 * 1024 * 1024)}`;
    const res = await push(id, token, [ev(1, "message.part.updated", { part: { type: "tool", callID: "c1", tool: "bash", state: { status: "completed", input: { command: "cat big" }, output } } })]);
    expect(res.status).toBe(200);
    const one = await srv.api("GET", `/api/runs/${id}`);
    const data = JSON.stringify(one.body.events[0].data);
    expect(data.length).toBeLessThanOrEqual(MAX_EVENT_BYTES + 1024);
    expect(data).toContain("… [truncated 2.0 MB]");
    expect(await (await fetch(`${srv.url}/r/${pageToken}`)).text()).toContain("first line of a huge output");
  });

  it("an event at seq 1,000,000 is refused with a 400 and nothing is stored; the run carries on", async () => {
    const { id, token } = await runningRun();
    const res = await push(id, token, [ev(1, "session.idle", {}), ev(1_000_000, "session.idle", {})]);
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatch(/too far ahead/);
    expect(await stored(id)).toBe(0);
    const ok = await push(id, token, [ev(1, "session.idle", {})]);
    expect(ok.status).toBe(200);
    expect((await ok.json()).ackedSeq).toBe(1);
    expect((await srv.api("GET", `/api/runs/${id}`)).body.status).toBe("running");
  });

  it("a run that sends more events than allowed ends failed with the reason; its token stops working", async () => {
    const { id, token } = await runningRun();
    const batch = Array.from({ length: MAX_RUN_EVENTS + 20 }, (_, i) => ev(i + 1, "session.status", { status: { type: "busy" } }));
    expect((await push(id, token, batch)).status).toBe(200);
    const run = await until("the run to fail", async () => {
      const r = (await srv.api("GET", `/api/runs/${id}`)).body;
      return r.status === "failed" ? r : null;
    }, 5_000);
    expect(run.reason).toMatch(new RegExp(`more than ${MAX_RUN_EVENTS} events`));
    expect(run.failureCode).toBe("event_limit");
    expect((await push(id, token, [ev(MAX_RUN_EVENTS + 21, "session.idle", {})])).status).toBe(401);
  });

  it("live page connections are capped per run and in total: the next one gets 429 with a message", async () => {
    const a = await runningRun();
    const b = await runningRun();
    const streams: AbortController[] = [];
    /** Opens a run page's live stream; the status, and the first update when it is a 200. */
    const open = async (pageToken: string) => {
      const ac = new AbortController();
      const res = await fetch(`${srv.url}/r/${pageToken}/events`, { signal: ac.signal });
      if (res.status !== 200) return { status: res.status, body: (await res.json()) as { error: string } };
      streams.push(ac);
      const reader = res.body!.getReader();
      let text = "";
      while (!text.includes("event: update")) text += new TextDecoder().decode((await reader.read()).value);
      return { status: 200, body: null };
    };
    try {
      for (let i = 0; i < MAX_LIVE_PER_RUN; i++) expect((await open(a.pageToken)).status).toBe(200);
      const over = await open(a.pageToken);
      expect(over.status).toBe(429);
      expect(over.body!.error).toMatch(/too many live connections to this run/);
      expect((await open(b.pageToken)).status).toBe(200); // another run still gets in
      expect((await open(b.pageToken)).status).toBe(200);
      const total = await open(b.pageToken);
      expect(total.status).toBe(429);
      expect(total.body!.error).toMatch(/too many live connections \(5\)/);
      // A viewer leaving frees its slot.
      streams.shift()!.abort();
      await until("a slot to free up", async () => (await open(a.pageToken)).status === 200, 5_000);
      expect((await fetch(`${srv.url}/r/${a.pageToken}`)).status).toBe(200); // the page itself is not capped
    } finally {
      for (const s of streams) s.abort();
    }
  });
});
