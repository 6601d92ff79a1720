/** The dashboard's pure pieces: sessions and CSRF tokens, formatting, the run page regions, the list, the diff. */
import { describe, expect, it } from "vitest";
import { digest } from "../../src/events/fold.ts";
import { runView } from "../../src/runs/run-view.ts";
import { diffFormat, diffKey, renderDiff } from "../../src/web/diff-view.ts";
import { formatDuration, formatTokens, formatUsage, sourceLink } from "../../src/web/format.ts";
import { INLINE_DIFF_CHARS, itemId, renderDiffSection, renderHead, renderRunPage, renderTimelineItem, runRegions } from "../../src/web/run-page.ts";
import { renderRow, renderRunsList } from "../../src/web/runs-list.ts";
import { answerFromForm, renderQuestions } from "../../src/web/questions-view.ts";
import { checkAnswer } from "../../src/events/questions.ts";
import { csrfMatches, csrfToken, newSession, readSession, safeNext, sessionCookie, sessionSecret, signSession } from "../../src/web/session.ts";

const T0 = new Date("2026-01-01T10:00:00Z");

function run(over: Record<string, unknown> = {}): any {
  return {
    id: "r-abc",
    status: "running",
    statusReason: null,
    failureCode: null,
    repo: "demo",
    ref: null,
    branch: "deckhand/x-abc",
    title: "Add <x>",
    prompt: "Add <script>alert(1)</script>",
    source: "slack",
    sourceRef: { channel: "C123", threadTs: "1.2", team: "T9" },
    createdBy: "U1",
    phases: [{ phase: "queued", at: T0.toISOString() }],
    createdAt: T0,
    startedAt: T0,
    finishedAt: null,
    statusChangedAt: T0,
    result: null,
    lastEventSeq: 0,
    lastHeartbeatAt: new Date(T0.getTime() + 5_000),
    pageToken: "tok",
    ...over,
  };
}

const toolEvent = (seq: number, status: string, extra: Record<string, unknown> = {}) => ({
  seq,
  type: "message.part.updated",
  at: new Date(T0.getTime() + seq * 1000),
  data: { part: { type: "tool", callID: "call-1", tool: "edit", messageID: "m1", state: { status, input: { filePath: "/workspace/repo/src/<a>.ts" }, ...extra } } },
});

describe("sessions", () => {
  const secret = sessionSecret("the-api-token-0123456789");

  it("a signed session reads back in any process that knows API_TOKEN, and nowhere else", () => {
    const s = newSession("  Ana   Lopes ", T0.getTime());
    const cookie = signSession(s, secret);
    expect(readSession(cookie, sessionSecret("the-api-token-0123456789"), T0.getTime())).toEqual(s);
    expect(s.name).toBe("Ana Lopes");
    expect(readSession(cookie, sessionSecret("another-token-0123456789"), T0.getTime())).toBeNull();
    expect(readSession(cookie, secret, s.exp + 1)).toBeNull(); // expired
    const [body, sig] = cookie.split(".");
    const forged = Buffer.from(JSON.stringify({ ...s, exp: s.exp + 1e9 })).toString("base64url");
    expect(readSession(`${forged}.${sig}`, secret, T0.getTime())).toBeNull();
    expect(readSession(`${body}.${sig}x`, secret, T0.getTime())).toBeNull();
    expect(readSession(`${body}`, secret, T0.getTime())).toBeNull();
    expect(readSession(undefined, secret)).toBeNull();
  });

  it("a CSRF token belongs to one session", () => {
    const a = newSession(null);
    const b = newSession(null);
    expect(csrfMatches(a, secret, csrfToken(a, secret))).toBe(true);
    expect(csrfMatches(a, secret, csrfToken(b, secret))).toBe(false);
    expect(csrfMatches(a, secret, "")).toBe(false);
    expect(csrfMatches(a, secret, undefined)).toBe(false);
  });

  it("cookies are httpOnly and SameSite, Secure on https; sign-in only redirects within the site", () => {
    expect(sessionCookie("v", { secure: false })).toMatch(/^deckhand_session=v; Path=\/; HttpOnly; SameSite=Lax; Max-Age=604800$/);
    expect(sessionCookie("v", { secure: true })).toMatch(/; Secure$/);
    expect(safeNext("/runs/r-1?view=side-by-side")).toBe("/runs/r-1?view=side-by-side");
    for (const bad of ["//evil.example", "https://evil.example", "/\\evil.example", "javascript:alert(1)", "/login", undefined]) expect(safeNext(bad)).toBe("/");
  });
});

describe("formatting", () => {
  it("durations, tokens, usage", () => {
    expect(formatDuration(4_400)).toBe("4 s");
    expect(formatDuration(65_000)).toBe("1m05s");
    expect(formatDuration(3_720_000)).toBe("1h02m");
    expect(formatTokens(950)).toBe("950");
    expect(formatTokens(7_700)).toBe("7.7k");
    expect(formatTokens(2_300_000)).toBe("2.3M");
    expect(formatUsage({ input: 1000, output: 200, reasoning: 0, cost: 0.034 })).toBe("1.2k tokens · $0.03");
    expect(formatUsage({ input: 0, output: 0, cost: 0 })).toBe("");
  });

  it("links back to where a run came from, and only to web addresses", () => {
    expect(sourceLink("slack", { channel: "C1", threadTs: "1.2", permalink: "https://acme.slack.com/archives/C1/p12" })).toEqual({ label: "Slack", detail: "thread", href: "https://acme.slack.com/archives/C1/p12" });
    expect(sourceLink("slack", { channel: "C1", team: "T1" }).href).toBe("https://app.slack.com/client/T1/C1");
    expect(sourceLink("slack", { channel: "C1" }).href).toBe("https://slack.com/app_redirect?channel=C1");
    expect(sourceLink("slack", { channel: "C1\"><x", team: "T1" }).href).toBeNull();
    expect(sourceLink("linear", { identifier: "ENG-12", issueUrl: "https://linear.app/acme/issue/ENG-12" })).toEqual({ label: "Linear", detail: "ENG-12", href: "https://linear.app/acme/issue/ENG-12" });
    expect(sourceLink("linear", { identifier: "ENG-12", issueUrl: "javascript:alert(1)" }).href).toBeNull();
    expect(sourceLink("cli", {})).toEqual({ label: "CLI", detail: null, href: null });
    expect(sourceLink("api", undefined).label).toBe("API");
  });
});

describe("the run page", () => {
  it("a tool call keeps its place in the timeline while its status changes; everything is escaped", () => {
    const working = digest([toolEvent(1, "running")]).timeline;
    const done = digest([toolEvent(1, "running"), toolEvent(2, "completed", { output: "ok" })]).timeline;
    expect(working).toHaveLength(1);
    expect(done).toHaveLength(1);
    expect(itemId(working[0]!)).toBe(itemId(done[0]!));
    const a = renderTimelineItem(working[0]!);
    const b = renderTimelineItem(done[0]!);
    expect(a).toContain("<b>Editing</b> <code>src/&lt;a&gt;.ts</code>");
    expect(a).toContain(">working<");
    expect(b).toContain("<b>Edited</b>");
    expect(b).toContain(">done<");
    const msg = renderTimelineItem({ kind: "message", seq: 3, at: T0.toISOString(), role: "assistant", text: "<img src=x onerror=alert(1)>", partId: "p" });
    expect(msg).not.toContain("<img");
  });

  it("the agent's questions: one form per part, own answers where allowed, read-only without a session; a posted form reads back as the answer", () => {
    const at = T0.toISOString();
    const d = digest([
      { seq: 1, type: "question.asked", at, data: { id: "que_2", questions: [{ question: "Colour?", options: [{ label: "red" }, { label: "blue" }], custom: false }, { question: "Size <px>?", options: [] }] } },
    ]);
    const v = { id: "r-abc", questions: d.questions };
    const signed = renderQuestions(v, "tok");
    expect(signed).toContain('<input type="hidden" name="parts" value="2">');
    expect(signed).toContain('<input type="radio" name="a0" value="red" required>');
    expect(signed).not.toContain('name="t0"'); // the colour takes only its options
    expect(signed).toContain('name="t1" maxlength="2000"');
    expect(signed).toContain("Size &lt;px&gt;?");
    const readOnly = renderQuestions(v);
    expect(readOnly).toContain("Sign in to answer.");
    expect(readOnly).not.toContain("<form");
    expect(renderQuestions({ id: "r-abc", questions: [] })).toBe("");
    // What each form posts, as checkAnswer reads it.
    expect(answerFromForm({ questionId: "que_2", parts: "2", a0: "red", t1: " 12 ", a1: "ignored" })).toEqual({ questionId: "que_2", answers: ["red", "12"] });
    expect(checkAnswer(d.questions[0]!, { answers: ["green", "12"] })).toMatchObject({ ok: false, message: "choose one of: red, blue" });
    expect(answerFromForm({ questionId: "que_1", choice: "Approve", answer: "x" })).toEqual({ questionId: "que_1", answer: "Approve" });
    expect(answerFromForm({ answer: " mine " })).toEqual({ questionId: null, answer: "mine" });
  });

  it("shows the failure reason, liveness, and a quiet sandbox", () => {
    const failed = runView(run({ status: "failed", statusReason: "The model provider rejected the API key", failureCode: "model_auth", finishedAt: T0 }), digest([]), "https://d/r/tok");
    const head = renderHead({ ...failed, timeline: [] }, T0);
    expect(head).toContain('role="alert"');
    expect(head).toContain("The model provider rejected the API key");
    expect(head).toContain("model_auth");
    expect(head).toContain('href="https://app.slack.com/client/T9/C123"');

    const live = { ...runView(run(), digest([]), "https://d/r/tok", T0), timeline: [] };
    expect(renderHead(live, new Date(T0.getTime() + 15_000))).toContain("last heartbeat <span data-ago=\"2026-01-01T10:00:05.000Z\">10 s ago</span>");
    expect(renderHead(live, new Date(T0.getTime() + 120_000))).toContain("the sandbox has gone quiet");
  });

  it("signed in: follow-up and stop forms carry the CSRF token; through the link: read-only", () => {
    const v = { ...runView(run(), digest([]), "https://d/r/tok", T0), timeline: [] };
    const signedIn = renderRunPage(v, null, { base: "/runs/r-abc", csrf: "CSRF-1", user: "Ana" });
    expect(signedIn).toContain('action="/runs/r-abc/follow-up"');
    expect(signedIn).toContain('action="/runs/r-abc/stop"');
    expect(signedIn.match(/name="_csrf" value="CSRF-1"/g)!.length).toBeGreaterThanOrEqual(3);
    expect(signedIn).toContain('<label for="follow-up-text">');
    const link = renderRunPage(v, null, { base: "/r/tok" });
    expect(link).not.toContain("follow-up-text");
    expect(link).not.toContain("_csrf");
    expect(link).toContain('data-events="/r/tok/events"');
    expect(link).not.toContain("<script>alert(1)</script>");
    expect(link).not.toMatch(/<script>(?!<\/script>)/); // no inline script (the CSP forbids it)
  });

  it("the Result section shows the agent's summary as the agent's words: attributed, quoted, escaped", () => {
    const summary = "Fixed it <img src=x onerror=alert(1)>.\nPing @everyone, see [docs](https://evil.example)";
    const v = { ...runView(run({ status: "idle", result: { summary, filesChanged: [{ path: "a.ts", additions: 1, deletions: 0 }], pushed: true } }), digest([]), "https://d/r/tok", T0), timeline: [] };
    const result = runRegions(v, T0).result;
    expect(result).toContain("<figcaption><b>The agent&#39;s summary</b> <span class=\"muted\">(its own words, not checked by Deckhand):</span></figcaption>");
    const quote = /<blockquote class="text">([\s\S]*?)<\/blockquote>/.exec(result)![1];
    expect(quote).toBe("Fixed it &lt;img src=x onerror=alert(1)&gt;.\nPing @everyone, see [docs](https://evil.example)");
    expect(result).not.toContain("<img");
    expect(renderRunPage(v, null, { base: "/r/tok", now: T0 })).toContain(result);
    const none = { ...v, result: { summary: "  ", filesChanged: [] } };
    expect(runRegions(none, T0).result).toContain("The agent left no summary.");
  });

  it("the live regions are the page's own pieces", () => {
    const events = [toolEvent(1, "running"), { seq: 2, type: "todo.updated", at: T0, data: { todos: [{ content: "Write <tests>", status: "in_progress" }] } }];
    const v = { ...runView(run(), digest(events), "https://d/r/tok", T0), timeline: digest(events).timeline };
    const r = runRegions(v, T0);
    const page = renderRunPage(v, null, { base: "/r/tok", now: T0 });
    for (const part of [r.head, r.todos, r.phases, r.result, ...r.timeline.map((t) => t.html)]) expect(page).toContain(part);
    expect(r.todos).toContain("Write &lt;tests&gt;");
    expect(r.todos).toContain(">doing<");
  });
});

describe("the diff", () => {
  const patch = "diff --git a/src/a.ts b/src/a.ts\n--- a/src/a.ts\n+++ b/src/a.ts\n@@ -1 +1 @@\n-const a = 1;\n+const a = '<b>';\ndiff --git a/b.md b/b.md\nnew file mode 100644\n--- /dev/null\n+++ b/b.md\n@@ -0,0 +1 @@\n+# B\n";
  it("renders both views with a file list linking to each file, escaping the code", () => {
    const line = renderDiff(patch, "line-by-line");
    const side = renderDiff(patch, diffFormat("side-by-side"));
    expect(line).toContain("d2h-file-list");
    expect(line.match(/<a href="#d2h-\d+" class="d2h-file-name">/g)).toHaveLength(2);
    expect(line).not.toContain("'<b>'");
    expect(line).toContain("&lt;b&gt;");
    expect(side).toContain("d2h-file-side-diff");
    expect(line).not.toContain("d2h-file-side-diff");
    expect(diffFormat("nonsense")).toBe("line-by-line");
    expect(diffKey(patch)).toBe(diffKey(`${patch}`));
    expect(diffKey(patch)).not.toBe(diffKey(`${patch}+x\n`));
    expect(diffKey(null)).toBe("none");
  });
  it("binary and very large files are listed by name, not drawn; the other files are drawn", () => {
    const generated = `diff --git a/data/big.json b/data/big.json
new file mode 100644
index 0000000..1111111
--- /dev/null
+++ b/data/big.json
@@ -0,0 +1,4000 @@
${Array.from({ length: 4000 }, (_, i) => `+{"row": ${i}, "value": "${"v".repeat(20)}"}`).join("\n")}
`;
    const binary = `diff --git a/img/logo.png b/img/logo.png
new file mode 100644
index 0000000..2222222
GIT binary patch
literal 12
Tcmd;LU|?WiU|?VbU|?Wi00%k%

literal 0
HcmV?d00001

`;
    const html = renderDiffSection(patch + generated + binary, "/r/tok", "line-by-line", true);
    expect(html).toContain("Not drawn here (in the patch and the branch)");
    expect(html).toMatch(/<code>data\/big\.json<\/code> \(large, \d+ KB of diff\)/);
    expect(html).toContain("<code>img/logo.png</code> (binary)");
    expect(html).toContain("d2h-file-wrapper"); // the small file is drawn
    expect(html).not.toContain('"row": 3999');
    expect(html).toContain('href="/r/tok/diff.patch"');
  });
  it("a very large diff is not drawn until asked for; the patch is always one click away", () => {
    let big = "";
    while (big.length <= INLINE_DIFF_CHARS) big += patch;
    const lazy = renderDiffSection(big, "/r/tok", "line-by-line");
    expect(lazy).toContain("This diff is large");
    expect(lazy).toContain('href="/r/tok?view=line-by-line&amp;full=1#diff"');
    expect(lazy).toContain('href="/r/tok/diff.patch"');
    expect(lazy).not.toContain("d2h-file-wrapper");
    expect(renderDiffSection(big, "/r/tok", "line-by-line", true)).toContain("d2h-file-wrapper");
    expect(renderDiffSection(patch, "/r/tok", "side-by-side")).toContain('href="/r/tok?view=line-by-line#diff"');
  });
});

describe("the runs list", () => {
  it("a row: status, source link, repo, branch and PR, duration, usage, who", () => {
    const row = renderRow(
      run({ status: "idle", statusChangedAt: new Date(T0.getTime() + 65_000), source: "linear", sourceRef: { identifier: "ENG-1", issueUrl: "https://linear.app/i/ENG-1" }, result: { pullRequestUrl: "https://github.com/o/r/pull/3", usage: { input: 1500, output: 500, reasoning: 0, cost: 0.02 } } }),
      T0,
    );
    expect(row).toContain('<a href="/runs/r-abc">Add &lt;x&gt;</a>');
    expect(row).toContain('<a href="https://linear.app/i/ENG-1">Linear ENG-1</a>');
    expect(row).toContain('<a href="https://github.com/o/r/pull/3">PR</a>');
    expect(row).toContain("1m05s");
    expect(row).toContain("2k tokens · $0.02");
    expect(row).toContain("U1");
    // Plain words, the same the CLI prints (src/runs/plain-status.ts): never "idle".
    expect(row).toContain('<span class="status s-idle">ready for review</span>');
    const active = renderRow(run({ usage: { input: 10, output: 5, reasoning: 0, cacheRead: 0, cacheWrite: 0, cost: 0 } }), new Date(T0.getTime() + 3000));
    expect(active).toContain(`data-since="${T0.toISOString()}"`);
    expect(active).toContain("15 tokens");
  });
  it("the filters show what is selected; the live stream keeps them", () => {
    const html = renderRunsList([], { status: "failed", source: "slack" }, { repos: ["demo", "api"], csrf: "c", user: null });
    expect(html).toContain('<option value="failed" selected>');
    expect(html).toContain('<option value="slack" selected>');
    expect(html).toContain('data-events="/events?status=failed&amp;source=slack"');
    expect(html).toContain("No runs match.");
    expect(html).toContain('<label for="f-repo">Repo</label>');
  });
});
