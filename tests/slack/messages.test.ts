/** The Slack integration's decisions, without I/O: text parsing, message content, planning. */
import { describe, expect, it } from "vitest";
import type { Run } from "../../src/db/schema.ts";
import type { RunDigest } from "../../src/events/vocabulary.ts";
import { agentText, endContent, failureReason, finalContent, markdownToMrkdwn, SECTION_MAX, statusContent } from "../../src/integrations/slack/messages.ts";
import { planSlack } from "../../src/integrations/slack/notifier.ts";
import { chooseRepo, parseMessage, slackToPlain } from "../../src/integrations/slack/parse.ts";
import { runView, type RunView } from "../../src/runs/run-view.ts";
import { runRow } from "../helpers/run-row.ts";

const BOT = "U0DECKBOT1";
const PAGE = "https://deckhand.example/r/tok123tok123tok123tok123";

const emptyDigest = (over: Partial<RunDigest> = {}): RunDigest => ({
  timeline: [],
  currentAction: null,
  todos: [],
  finalText: null,
  lastError: null,
  usage: { input: 0, output: 0, reasoning: 0, cacheRead: 0, cacheWrite: 0, cost: 0 },
  toolCalls: 0,
  busy: false,
  lastSeq: 0,
  timelineDropped: 0,
  questions: [],
  settledQuestions: [],
  reasoning: [],
  ...over,
});

const t0 = new Date("2026-01-01T10:00:00Z");
function makeRun(over: Partial<Run> = {}): Run {
  return runRow(t0, {
    id: "r-abc",
    status: "running",
    repo: "demo",
    branch: "deckhand/fix-login-r-abc",
    prompt: "Fix the login bug",
    title: "Fix the login bug",
    source: "slack",
    sourceRef: { channel: "C1", threadTs: "111.000001", messageTs: "111.000001" },
    createdBy: "alice",
    pageToken: "tok123tok123tok123tok123",
    ...over,
  });
}
const view = (run: Run, d = emptyDigest(), now = new Date(t0.getTime() + 75_000)): RunView => runView(run, d, PAGE, now);
const allText = (c: { text: string; blocks: any[] }) => [c.text, ...c.blocks.map((b) => b.text?.text ?? (b.elements ?? []).map((e: any) => e.text).join(" "))].join("\n");

describe("parsing what people say to the bot", () => {
  it("strips the mention and takes repo=<name> out of the task", () => {
    expect(parseMessage(`<@${BOT}> repo=web Fix the login bug`, BOT)).toEqual({ text: "Fix the login bug", repo: "web", command: null });
    expect(parseMessage(`<@${BOT}> Fix the login bug in repo=api-server, please`, BOT)).toMatchObject({ text: "Fix the login bug in please", repo: "api-server" });
    expect(parseMessage(`<@${BOT}> repo: \`web\` add tests`, BOT)).toMatchObject({ text: "add tests", repo: "web" });
    expect(parseMessage(`<@${BOT}> make the repository faster`, BOT)).toMatchObject({ repo: null, text: "make the repository faster" });
  });

  it("recognises stop / cancel / status / help only as the whole message", () => {
    for (const t of ["stop", "Stop!", `<@${BOT}> cancel`, "CANCEL.", "abort"]) expect(parseMessage(t, BOT).command).toBe("stop");
    expect(parseMessage("status", BOT).command).toBe("status");
    expect(parseMessage(`<@${BOT}> status?`, BOT).command).toBe("status");
    expect(parseMessage("help", BOT).command).toBe("help");
    expect(parseMessage("stop using var in app.ts", BOT).command).toBeNull();
    expect(parseMessage("what is the status of the tests", BOT).command).toBeNull();
  });

  it("turns Slack markup back into plain text", () => {
    expect(slackToPlain(`<@${BOT}> see <https://example.com/a?b=1|the docs> and <https://x.io> &lt;b&gt; &amp; <#C123|general>`, BOT)).toBe(
      "see the docs (https://example.com/a?b=1) and https://x.io <b> & #general",
    );
    expect(slackToPlain("ping <@U999OTHER> now", BOT)).toBe("ping <@U999OTHER> now");
  });

  it("chooses the repo: repo= first, then the channel's default, then DEFAULT_REPO, else nobody knows", () => {
    const channels = { C1: "web" };
    expect(chooseRepo({ repo: "api" }, "C1", channels, "docs")).toBe("api");
    expect(chooseRepo({ repo: null }, "C1", channels, "docs")).toBe("web");
    expect(chooseRepo({ repo: null }, "C2", channels, "docs")).toBe("docs");
    expect(chooseRepo({ repo: null }, "C2", channels, undefined)).toBeNull();
  });
});

describe("the status message", () => {
  it("shows the phase and elapsed time while starting", () => {
    const run = makeRun({ status: "provisioning", phases: [{ phase: "queued", at: "" }, { phase: "provisioning", at: "" }, { phase: "sandbox_created", at: "" }] });
    const c = statusContent(view(run));
    expect(c.blocks[0].text.text).toBe(":gear: *Cloning the repo* · 1m 15s");
    expect(c.text).toBe("Cloning the repo (1m 15s) — Fix the login bug");
    expect(allText(c)).toContain(`<${PAGE}|Run page>`);
    expect(allText(c)).toContain("`stop` to cancel");
  });

  it("shows the current action and the agent's todo list while working", () => {
    const d = emptyDigest({
      currentAction: "Running npm test",
      todos: [
        { content: "Find the bug", status: "completed" },
        { content: "Fix <Login> & test", status: "in_progress" },
        { content: "Update docs", status: "pending" },
      ],
    });
    const c = statusContent(view(makeRun(), d));
    expect(c.blocks[0].text.text).toBe(":hammer_and_wrench: *Working* · 1m 15s\nRunning npm test…");
    expect(c.blocks[1].text.text).toBe("*Plan*\n~✓ Find the bug~\n*▸ Fix &lt;Login&gt; &amp; test*\n○ Update docs");
    expect(c.text).toContain("Working: Running npm test");
    // The fallback text is mrkdwn too: a title with markup characters is escaped.
    expect(statusContent(view(makeRun({ title: "Fix <Login> & co" }))).text).toContain("— Fix &lt;Login&gt; &amp; co");
    // Without an action the agent is thinking.
    expect(statusContent(view(makeRun())).blocks[0].text.text).toContain("Thinking…");
  });

  it("says done / failed in place at the end, and leaves elapsed time out on request", () => {
    const idle = makeRun({ status: "idle", statusChangedAt: new Date(t0.getTime() + 42_000) });
    expect(statusContent(view(idle)).blocks[0].text.text).toBe(":white_check_mark: *Done* · 42s — the result is below.");
    const failed = makeRun({ status: "failed", statusReason: "The sandbox stopped responding (no heartbeat for 95 s)", failureCode: "sandbox_silent", finishedAt: new Date(t0.getTime() + 5000) });
    expect(statusContent(view(failed)).blocks[0].text.text).toBe(":x: *Failed* · 5s: The sandbox stopped responding (no heartbeat for 95 s)");
    expect(statusContent(view(makeRun()), { elapsed: false }).text).toBe("Working: Thinking — Fix the login bug");
  });
});

describe("the status message's buttons", () => {
  const buttons = (run: Run) => (statusContent(view(run)).blocks.find((b) => b.type === "actions")?.elements ?? []).map((e: any) => e.action_id);
  it("Stop while it works; Follow-up while it works or is idle; none once it is over", () => {
    for (const status of ["queued", "provisioning", "running"] as const) expect(buttons(makeRun({ status }))).toEqual(["deckhand_stop", "deckhand_followup"]);
    expect(buttons(makeRun({ status: "idle" }))).toEqual(["deckhand_followup"]);
    for (const status of ["closed", "failed", "cancelled"] as const) expect(buttons(makeRun({ status }))).toEqual([]);
    const follow = statusContent(view(makeRun({ status: "idle" }))).blocks.find((b) => b.type === "actions")!.elements[0];
    expect(follow).toMatchObject({ type: "button", text: { type: "plain_text", text: "Follow-up" }, value: "r-abc" });
  });
});

describe("the final message", () => {
  const result = {
    summary: "I fixed the **login** bug.\n\n## Changes\n- `src/app.ts`: check the [session](https://example.com/s) first",
    filesChanged: [
      { path: "src/app.ts", additions: 3, deletions: 1 },
      { path: "test/app.test.ts", additions: 10, deletions: 0 },
    ],
    additions: 13,
    deletions: 1,
    branch: "deckhand/fix-login-r-abc",
    pushed: true,
    url: `${PAGE}#diff`,
  };

  it("has what was done, files with +/- counts, duration, tokens, cost and the links", () => {
    const run = makeRun({ status: "idle", statusChangedAt: new Date(t0.getTime() + 125_000), result });
    const d = emptyDigest({ usage: { input: 12_345, output: 678, reasoning: 0, cacheRead: 0, cacheWrite: 0, cost: 0.0123 } });
    const c = finalContent(view(run, d));
    const text = allText(c);
    expect(c.blocks[0].text.text).toBe(":white_check_mark: *Done* in 2m 05s");
    expect(c.blocks[1].text.text).toBe("_The agent's summary, in its own words:_\nI fixed the *login* bug.\n\n*Changes*\n• `src/app.ts`: check the <https://example.com/s|session> first");
    expect(text).toContain("*2 files changed* (+13 −1)\n• `src/app.ts` +3 −1\n• `test/app.test.ts` +10 −0");
    expect(text).toContain(`<${PAGE}#diff|Diff>  ·  <${PAGE}|Run page>`);
    expect(text).toContain("13k tokens (12k in, 678 out)");
    expect(text).toContain("$0.01");
    expect(text).toContain("Branch `deckhand/fix-login-r-abc`");
    expect(c.text).toMatch(/^Done in 2m 05s \(2 files changed\): I fixed the \*\*login\*\* bug\./);
    expect(c.text.length).toBeLessThanOrEqual(300);
  });

  it("links the pull request when there is one, and says so when nothing changed or the push failed", () => {
    const withPr = finalContent(view(makeRun({ status: "idle", result: { ...result, pullRequestUrl: "https://github.com/o/r/pull/7", url: "https://github.com/o/r/pull/7" } })));
    expect(allText(withPr)).toContain(`<https://github.com/o/r/pull/7|Pull request>  ·  <${PAGE}#diff|Diff>  ·  <${PAGE}|Run page>`);
    const nothing = finalContent(view(makeRun({ status: "idle", result: { summary: "Nothing to do.", filesChanged: [], pushed: false } })));
    expect(allText(nothing)).toContain("No files changed.");
    expect(allText(nothing)).not.toContain("|Diff>");
    const unpushed = finalContent(view(makeRun({ status: "idle", result: { ...result, pushed: false, pushError: "remote: Permission denied" } })));
    expect(allText(unpushed)).toContain(":warning: The branch could not be pushed (remote: Permission denied). The diff is on the run page.");
    const troubled = finalContent(view(makeRun({ status: "idle", result: { ...result, error: { message: "The model provider is rate limiting requests", code: "model_rate_limit" } } })));
    expect(allText(troubled)).toContain(":warning: The agent reported a problem: The model provider is rate limiting requests");
  });

  it("cuts long agent output to fit, with a link to the full text, never breaking a code block", () => {
    const long = `Summary:\n\`\`\`\n${"line of output that goes on\n".repeat(400)}\`\`\`\nThe end.`;
    const c = finalContent(view(makeRun({ status: "idle", result: { ...result, summary: long } })));
    for (const b of c.blocks) if (b.text?.text) expect(b.text.text.length).toBeLessThanOrEqual(SECTION_MAX);
    const body = c.blocks[1].text.text as string;
    expect(body).toContain("…");
    expect(body.endsWith(`<${PAGE}|Read the full text on the run page>`)).toBe(true);
    expect((body.match(/```/g) ?? []).length % 2).toBe(0);
    // Escaping can grow text; it is still cut to fit.
    const amp = agentText("&".repeat(10_000), PAGE);
    expect(amp.length).toBeLessThanOrEqual(SECTION_MAX);
    expect(amp).not.toMatch(/&(?!amp;)/);
    // Many files: the first ten and a count.
    const many = Array.from({ length: 25 }, (_, i) => ({ path: `f${i}.ts`, additions: 1, deletions: 0 }));
    expect(allText(finalContent(view(makeRun({ status: "idle", result: { ...result, filesChanged: many } }))))).toContain("…and 15 more on the <");
  });

  it("converts Markdown to mrkdwn and escapes what Slack would read as markup", () => {
    expect(markdownToMrkdwn("**bold** and *it* and <script> & `a<b`")).toBe("*bold* and _it_ and &lt;script&gt; &amp; `a&lt;b`");
    expect(markdownToMrkdwn("```ts\nconst a = 1 < 2;\n```")).toBe("```\nconst a = 1 &lt; 2;\n```");
  });
});

describe("failures and cancels in plain words", () => {
  it("says why, with what to do", () => {
    const failed = makeRun({ status: "failed", failureCode: "model_auth", statusReason: "The model provider rejected the API key (Incorrect API key provided)", finishedAt: new Date(t0.getTime() + 9000) });
    const c = endContent(view(failed));
    expect(c.blocks[0].text.text).toBe(":x: *Failed* after 9s: The model provider rejected the API key (Incorrect API key provided)");
    expect(allText(c)).toContain("Check the model API key configured on the Deckhand server.");
    expect(c.text).toBe("Failed: The model provider rejected the API key (Incorrect API key provided)");
    const cancelled = makeRun({ status: "cancelled", statusReason: "Stopped by alice (slack)", finishedAt: new Date(t0.getTime() + 3000) });
    expect(endContent(view(cancelled)).blocks[0].text.text).toBe(":black_square_for_stop: *Cancelled* after 3s: Stopped by alice (slack)");
  });

  it("falls back to words per failure code when no reason was recorded", () => {
    expect(failureReason({ status: "failed", reason: null, failureCode: "sandbox_silent" }).reason).toBe("The sandbox stopped responding");
    expect(failureReason({ status: "failed", reason: "", failureCode: "model_auth" }).reason).toBe("The model provider rejected the API key");
    expect(failureReason({ status: "failed", reason: null, failureCode: "weird" }).reason).toBe("The run failed");
    expect(failureReason({ status: "failed", reason: null, failureCode: "relay_unreachable" }).hint).toMatch(/PUBLIC_URL/);
  });
});

describe("planning what the thread is owed", () => {
  const plan = (run: Run, state: Record<string, unknown> = {}, d = emptyDigest()) => planSlack({ run, view: view(run, d), digest: d, state, now: new Date() });

  it("a new run owes a status post in the thread and 👀 on the mention, once", () => {
    const p = plan(makeRun({ status: "queued" }));
    expect(p.messages.map((m) => [m.kind, m.dedupeKey])).toEqual([
      ["status_post", "slack:r-abc:status:0:post"],
      ["react", "slack:r-abc:react:0:working"],
    ]);
    expect(p.messages[0]!.orderingKey).toBe("slack:C1:111.000001");
    expect(p.messages[0]!.payload).toMatchObject({ channel: "C1", threadTs: "111.000001", turn: 0 });
    expect(p.messages[1]!.payload).toMatchObject({ ts: "111.000001", add: ["eyes"] });
    // Planned again with the saved state and nothing new: the same keys (queued once), no edit.
    const again = plan(makeRun({ status: "queued" }), { ...p.state });
    expect(again.messages.map((m) => m.dedupeKey)).toEqual(p.messages.map((m) => m.dedupeKey));
  });

  it("a follow-up sent from the run page, the API or the CLI owes one line in the thread, attributed and escaped", () => {
    const run = makeRun({ status: "running" });
    const d = emptyDigest();
    const foreignPrompts = [
      { seq: 2, text: "also docs <!channel>", author: "Ana", source: "web" },
      { seq: 3, text: "and tests", author: null, source: "cli" },
    ];
    const p = planSlack({ run, view: view(run, d), digest: d, state: {}, now: new Date(), foreignPrompts });
    const lines = p.messages.filter((m) => m.kind === "reply");
    expect(lines.map((m) => [m.dedupeKey, m.orderingKey, m.payload.text])).toEqual([
      ["slack:r-abc:input:2", "slack:C1:111.000001", ":inbox_tray: Follow-up from *Ana* (the run page): also docs &lt;!channel&gt;"],
      ["slack:r-abc:input:3", "slack:C1:111.000001", ":inbox_tray: Follow-up from *someone* (the CLI): and tests"],
    ]);
    expect(lines.every((m) => m.role === undefined)).toBe(true);
  });

  it("a change of what is shown owes a coalescing edit; elapsed seconds alone do not", () => {
    const first = plan(makeRun({ status: "queued" }));
    const state = { ...first.state };
    const running = plan(makeRun({ status: "running", lastEventSeq: 5 }), state, emptyDigest({ currentAction: "Editing src/app.ts" }));
    const edit = running.messages.find((m) => m.kind === "status_edit")!;
    expect(edit).toMatchObject({ coalesce: true, orderingKey: "slack:C1:111.000001", payload: { turn: 0 } });
    expect(JSON.stringify(edit.payload)).toContain("Editing src/app.ts");
    const later = planSlack({ run: makeRun({ status: "running", lastEventSeq: 5 }), view: view(makeRun({ status: "running" }), emptyDigest({ currentAction: "Editing src/app.ts" }), new Date(t0.getTime() + 80_000)), digest: emptyDigest(), state: { ...state, ...running.state }, now: new Date() });
    expect(later.messages.some((m) => m.kind === "status_edit")).toBe(false);
  });

  it("idle owes the final message (keyed by the delivered input), a last edit and ✅", () => {
    const state = { turn: 0, "hash:0": "something-older" };
    const idle = makeRun({ status: "idle", deliveredInputSeq: 1, result: { summary: "Done it.", filesChanged: [] } });
    const p = plan(idle, state);
    expect(p.messages.map((m) => m.kind)).toEqual(["status_edit", "final", "react"]);
    expect(p.messages[1]!.dedupeKey).toBe("slack:r-abc:final:1");
    expect(p.messages[2]!.payload).toMatchObject({ remove: ["eyes"], add: ["white_check_mark"] });
    // A continuation after idle is a new turn: a new status post; its end is a second final message.
    const resumed = plan(makeRun({ status: "running", deliveredInputSeq: 1 }), { ...state, ...p.state });
    expect(resumed.messages[0]!.dedupeKey).toBe("slack:r-abc:status:1:post");
    expect(resumed.state).toMatchObject({ turn: 1 });
    const idle2 = plan(makeRun({ status: "idle", deliveredInputSeq: 2 }), { ...state, ...p.state, ...resumed.state });
    expect(idle2.messages.find((m) => m.kind === "final")!.dedupeKey).toBe("slack:r-abc:final:2");
  });

  it("failed and cancelled owe one end message and ❌; runs from elsewhere owe nothing", () => {
    const p = plan(makeRun({ status: "failed", failureCode: "model_auth", statusReason: "The model provider rejected the API key" }), { turn: 0, "hash:0": "x" });
    expect(p.messages.map((m) => [m.kind, m.dedupeKey])).toEqual([
      ["status_edit", expect.stringMatching(/^slack:r-abc:status:0:edit:/)],
      ["end", "slack:r-abc:end"],
      ["react", "slack:r-abc:react:end"],
    ]);
    expect(JSON.stringify(p.messages[1]!.payload)).toContain("The model provider rejected the API key");
    expect(plan(makeRun({ source: "api", sourceRef: {} })).messages).toEqual([]);
  });
});
