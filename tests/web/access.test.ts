/** Who may see and do what on the dashboard: sessions, CSRF, per-run links and their revocation. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashToken } from "../../src/runs/tokens.ts";
import { startTestServer, type TestServer } from "../helpers/harness.ts";
import { forceRunRow } from "../helpers/force-run-row.ts";

const TOKEN = "test-api-token-0123456789";

describe("dashboard access", () => {
  let srv: TestServer;
  let a: { id: string; url: string };
  let b: { id: string; url: string };

  const get = (path: string, cookie?: string) => fetch(`${srv.url}${path}`, { redirect: "manual", headers: cookie ? { cookie } : {} });
  const post = (path: string, form: Record<string, string>, headers: Record<string, string> = {}) =>
    fetch(`${srv.url}${path}`, { method: "POST", redirect: "manual", headers: { "content-type": "application/x-www-form-urlencoded", ...headers }, body: new URLSearchParams(form).toString() });
  const pathOf = (url: string) => new URL(url).pathname;

  async function signIn(name = "Ana"): Promise<{ cookie: string; csrf: string }> {
    const res = await post("/login", { token: TOKEN, name, next: "/" });
    expect(res.status).toBe(303);
    const setCookie = res.headers.get("set-cookie")!;
    expect(setCookie).toMatch(/HttpOnly/);
    expect(setCookie).toMatch(/SameSite=Lax/);
    const cookie = setCookie.split(";")[0]!;
    const page = await (await get("/", cookie)).text();
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page)![1]!;
    return { cookie, csrf };
  }

  /** Read a server-sent event stream until `until` matches what arrived (or the stream ends). */
  async function readSse(path: string, until: (text: string) => boolean, cookie?: string, timeoutMs = 10_000): Promise<{ status: number; text: string }> {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), timeoutMs);
    const res = await fetch(`${srv.url}${path}`, { headers: cookie ? { cookie } : {}, signal: ac.signal });
    let text = "";
    if (res.ok && res.body) {
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          text += dec.decode(value);
          if (until(text)) break;
        }
      } catch {
        /* aborted */
      }
    }
    clearTimeout(timer);
    ac.abort();
    return { status: res.status, text };
  }

  beforeAll(async () => {
    srv = await startTestServer({ database: "pglite", noReconciler: true });
    a = (await srv.api("POST", "/api/runs", { repo: "demo", prompt: "Run A: add a <b>bold</b> file" })).body;
    b = (await srv.api("POST", "/api/runs", { repo: "demo", prompt: "Run B: something else" })).body;
  });
  afterAll(async () => srv?.close());

  it("a run's link opens that run read-only, and nothing else", async () => {
    const page = await get(pathOf(a.url));
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
    const htmlA = await page.text();
    expect(htmlA).toContain("Run A: add a &lt;b&gt;bold&lt;/b&gt; file");
    expect(htmlA).not.toContain("follow-up-text"); // no steering without signing in
    expect(htmlA).toContain("Sign in</a> to send a follow-up");
    expect((await get(`${pathOf(a.url)}/diff.patch`)).status).toBe(200);
    const live = await readSse(`${pathOf(a.url)}/events`, (t) => t.includes("event: update"));
    expect(live.status).toBe(200);
    expect(live.text).toContain("Run A: add a &lt;b&gt;bold&lt;/b&gt; file");

    // The link is no key to anything else: the list, the other run, their streams and patches.
    for (const p of ["/", `/runs/${b.id}`, `/runs/${a.id}`]) {
      const res = await get(p);
      expect(res.status, p).toBe(303);
      expect(res.headers.get("location"), p).toMatch(/^\/login\?next=/);
    }
    for (const p of ["/events", `/runs/${b.id}/events`, `/runs/${b.id}/diff.patch`]) expect((await get(p)).status, p).toBe(401);
    expect((await get(`/r/${b.id}`)).status).toBe(404);
    expect((await get(`${pathOf(a.url)}x`)).status).toBe(404);
  });

  it("signing in needs the API token; a forged or tampered cookie is no session", async () => {
    const bad = await post("/login", { token: "not-the-token-at-all", next: "/" });
    expect(bad.status).toBe(401);
    expect(bad.headers.get("set-cookie")).toBeNull();
    expect(await bad.text()).toContain("That is not the API token.");
    const crossSite = await post("/login", { token: TOKEN }, { origin: "https://evil.example" });
    expect(crossSite.status).toBe(403);

    const { cookie } = await signIn();
    const list = await get("/", cookie);
    expect(list.status).toBe(200);
    const html = await list.text();
    expect(html).toContain(a.id);
    expect(html).toContain(b.id);
    const [name, value] = cookie.split("=") as [string, string];
    const tampered = `${name}=${value.slice(0, -2)}${value.endsWith("A") ? "B" : "A"}`;
    expect((await get("/", tampered)).status).toBe(303);
    expect((await get("/", `${name}=${Buffer.from(JSON.stringify({ sid: "x", name: null, exp: Date.now() + 1e9 })).toString("base64url")}.AAAA`)).status).toBe(303);
    // Signing out needs the CSRF token too, and clears the cookie.
    const { cookie: c2, csrf } = await signIn();
    expect((await post("/logout", {}, { cookie: c2 })).status).toBe(403);
    const out = await post("/logout", { _csrf: csrf }, { cookie: c2 });
    expect(out.status).toBe(303);
    expect(out.headers.get("set-cookie")).toMatch(/^deckhand_session=; .*Max-Age=0/);
    // An open redirect after sign-in is not possible.
    const res = await post("/login", { token: TOKEN, next: "//evil.example/" });
    expect(res.headers.get("location")).toBe("/");
  });

  it("follow-up and stop without a session or with a bad CSRF token are refused and change nothing", async () => {
    const { cookie, csrf } = await signIn();
    const inputsBefore = (await srv.deckhand.store.inputs(a.id)).length;
    const attempts: [string, Record<string, string>, Record<string, string>, number][] = [
      ["/follow-up", { text: "sneaky" }, {}, 401],
      ["/follow-up", { text: "sneaky", _csrf: csrf }, {}, 401], // a token without its session is nothing
      ["/follow-up", { text: "sneaky" }, { cookie }, 403],
      ["/follow-up", { text: "sneaky", _csrf: "wrong" }, { cookie }, 403],
      ["/follow-up", { text: "sneaky", _csrf: csrf }, { cookie, origin: "https://evil.example" }, 403],
      ["/stop", {}, {}, 401],
      ["/stop", { _csrf: `${csrf}x` }, { cookie }, 403],
      ["/rotate-link", { _csrf: "nope" }, { cookie }, 403],
    ];
    for (const [action, form, headers, status] of attempts) {
      const res = await post(`/runs/${a.id}${action}`, form, headers);
      expect(res.status, `${action} ${JSON.stringify(form)} ${Object.keys(headers)}`).toBe(status);
    }
    expect((await srv.deckhand.store.inputs(a.id)).length).toBe(inputsBefore);
    const run = await srv.deckhand.store.get(a.id);
    expect(run!.status).toBe("queued");
    expect((await get(pathOf(a.url))).status).toBe(200); // the link was not rotated

    // With the session and its token, the same follow-up lands, as the signed-in person, from the web.
    const ok = await post(`/runs/${a.id}/follow-up`, { text: "also add tests" }, { cookie, "x-csrf-token": csrf, accept: "application/json" });
    expect(ok.status).toBe(202);
    const inputs = await srv.deckhand.store.inputs(a.id);
    expect(inputs.at(-1)).toMatchObject({ kind: "prompt", text: "also add tests", author: "Ana", source: "web" });
    // Without JavaScript: a plain form post, answered with a redirect back to the run.
    const plain = await post(`/runs/${a.id}/follow-up`, { text: "and docs", _csrf: csrf }, { cookie });
    expect(plain.status).toBe(303);
    expect(plain.headers.get("location")).toBe(`/runs/${a.id}`);
    const empty = await post(`/runs/${a.id}/follow-up`, { text: "  ", _csrf: csrf }, { cookie });
    expect(empty.status).toBe(400);
  });

  it("stopping from the page cancels the run; the list filters by status, repo and source", async () => {
    const { cookie, csrf } = await signIn("Bo");
    const res = await post(`/runs/${b.id}/stop`, { _csrf: csrf }, { cookie, accept: "application/json" });
    expect(res.status).toBe(202);
    const run = await srv.deckhand.store.get(b.id);
    expect(run!.status).toBe("cancelled");
    expect(run!.statusReason).toBe("Stopped by Bo (web)");
    const cancelled = await (await get("/?status=cancelled", cookie)).text();
    expect(cancelled).toContain(b.id);
    expect(cancelled).not.toContain(a.id);
    const fromSlack = await (await get("/?source=slack", cookie)).text();
    expect(fromSlack).toContain("No runs match.");
    const demo = await (await get("/?repo=demo&source=api", cookie)).text();
    expect(demo).toContain(a.id);
    expect(demo).toContain(b.id);
    // The signed-in run page has the controls; the stream of a finished run ends by itself.
    const page = await (await get(`/runs/${b.id}`, cookie)).text();
    expect(page).toContain("Stopped by Bo (web)");
    expect(page).toContain('role="alert"');
    const live = await readSse(`/runs/${b.id}/events`, (t) => t.includes("event: end"), cookie);
    expect(live.text).toContain("event: end");
  });

  it("revoking a run's link: the old link 404s and its live stream says so", async () => {
    const { cookie, csrf } = await signIn();
    const old = pathOf(a.url);
    const stream = readSse(`${old}/events`, (t) => t.includes("event: gone"));
    await new Promise((r) => setTimeout(r, 300));
    const res = await post(`/runs/${a.id}/rotate-link`, { _csrf: csrf }, { cookie });
    expect(res.status).toBe(303);
    expect((await get(old)).status).toBe(404);
    expect((await get(`${old}/diff.patch`)).status).toBe(404);
    expect((await stream).text).toContain("event: gone");
    const fresh = (await srv.api("GET", `/api/runs/${a.id}`)).body.url as string;
    expect(fresh).not.toBe(a.url);
    expect((await get(pathOf(fresh))).status).toBe(200);
  });

  it("the agent's questions on the run page: a button per option, its words escaped; the answer goes to the agent once; cross-site posts refused", async () => {
    // A running run whose sandbox (played here over the relay's own endpoint) reports a question and an approval ask.
    const token = "relay-token-questions-0123456789";
    const q = await srv.deckhand.store.create({ repo: "demo", prompt: "ask me", source: "api", sourceRef: {} });
    await forceRunRow(srv.deckhand.store.db, q.id, { status: "running", relayTokenHash: hashToken(token) });
    const at = new Date().toISOString();
    const events = [
      { seq: 1, type: "question.asked", at, data: { id: "que_web1", questions: [{ question: "<img src=x onerror=alert(1)> Which name?", header: "Name", options: [{ label: "alpha", description: "the first" }, { label: "<b>beta</b>", description: "" }] }] } },
      { seq: 2, type: "permission.asked", at, data: { id: "per_web1", permission: "bash", patterns: ["git push origin main"] } },
    ];
    const pushed = await fetch(`${srv.url}/relay/v1/runs/${q.id}/events`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify({ events }) });
    expect(pushed.status).toBeLessThan(300);

    const { cookie, csrf } = await signIn("Ana");
    const page = await (await get(`/runs/${q.id}`, cookie)).text();
    expect(page).toContain("&lt;img src=x onerror=alert(1)&gt; Which name?");
    expect(page).not.toContain("<img src=x");
    expect(page).toContain(`action="/runs/${q.id}/answers"`);
    expect(page).toContain('<button type="submit" name="choice" value="alpha">alpha</button>');
    expect(page).toContain('value="&lt;b&gt;beta&lt;/b&gt;">&lt;b&gt;beta&lt;/b&gt;</button>');
    expect(page).toContain('name="answer" maxlength="2000"'); // an answer of one's own
    expect(page).toContain("<code>bash: git push origin main</code>");
    expect(page).toContain('class="danger">Reject</button>');
    // The read-only link shows the question, but no way to answer it.
    const readOnly = await (await get(`/r/${q.pageToken}`)).text();
    expect(readOnly).toContain("Which name?");
    expect(readOnly).toContain("Sign in to answer.");
    expect(readOnly).not.toContain("/answers");
    // The live stream carries the same forms.
    const live = await readSse(`/runs/${q.id}/events`, (t) => t.includes("event: update"), cookie);
    expect(live.text).toContain(`/runs/${q.id}/answers`);

    const answer = (form: Record<string, string>, headers: Record<string, string>) => post(`/runs/${q.id}/answers`, form, headers);
    const refused: [Record<string, string>, Record<string, string>, number][] = [
      [{ questionId: "que_web1", choice: "alpha" }, {}, 401],
      [{ questionId: "que_web1", choice: "alpha", _csrf: csrf }, { cookie, origin: "https://evil.example" }, 403],
      [{ questionId: "que_web1", choice: "alpha" }, { cookie }, 403],
      [{ questionId: "que_web1", choice: "alpha", _csrf: "forged" }, { cookie }, 403],
    ];
    for (const [form, headers, status] of refused) expect((await answer(form, headers)).status, JSON.stringify(headers)).toBe(status);
    expect((await srv.deckhand.store.inputs(q.id)).filter((i) => i.kind === "answer")).toEqual([]);

    const ok = await answer({ questionId: "que_web1", choice: "<b>beta</b>" }, { cookie, "x-csrf-token": csrf, accept: "application/json" });
    expect(ok.status).toBe(202);
    expect((await ok.json()).message).toBe("Sent to the agent: <b>beta</b>");
    const again = await answer({ questionId: "que_web1", answer: "my own words", _csrf: csrf }, { cookie, accept: "application/json" });
    expect(again.status).toBe(409);
    expect((await again.json()).error).toMatch(/not waiting for an answer/);
    const empty = await answer({ questionId: "per_web1", choice: "", answer: " ", _csrf: csrf }, { cookie, accept: "application/json" });
    expect(empty.status).toBe(400);
    // Without JavaScript: the Reject button's plain post, answered with a redirect back to the run.
    const reject = await answer({ questionId: "per_web1", choice: "Reject", _csrf: csrf }, { cookie });
    expect(reject.status).toBe(303);
    const answers = (await srv.deckhand.store.inputs(q.id)).filter((i) => i.kind === "answer");
    expect(answers.map((i) => [JSON.parse(i.text!), i.author, i.source])).toEqual([
      [{ kind: "question", requestId: "que_web1", answers: [["<b>beta</b>"]] }, "Ana", "web"],
      [{ kind: "permission", requestId: "per_web1", reply: "reject" }, "Ana", "web"],
    ]);
  });

  it("serves diff2html's prebuilt files and our own, compressed and cacheable", async () => {
    for (const name of ["diff2html.min.css", "diff2html-ui-slim.min.js", "dashboard.js", "dashboard.css"]) {
      const res = await fetch(`${srv.url}/assets/${name}`, { headers: { "accept-encoding": "gzip" } });
      expect(res.status, name).toBe(200);
      expect((await res.text()).length, name).toBeGreaterThan(500);
      expect(res.headers.get("etag"), name).toBeTruthy();
    }
    for (const name of ["..%2Fpackage.json", "constructor", "__proto__"]) expect((await fetch(`${srv.url}/assets/${name}`)).status, name).toBe(404);
  });
});
