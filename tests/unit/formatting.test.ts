import { describe, expect, it } from "vitest";
import { exitCodeFor, progressLine, summary } from "../../src/cli/progress.ts";
import { parseNumstat } from "../../src/runs/deliver.ts";
import { RepoRegistry, UnknownRepoError } from "../../src/runs/repos.ts";
import { branchName, hashToken, tokenMatches } from "../../src/runs/tokens.ts";
import { renderRunPage } from "../../src/web/run-page.ts";

const view: any = {
  id: "r-abc",
  status: "idle",
  reason: null,
  repo: "demo",
  branch: "deckhand/add-x-abc12",
  title: "Add <x>",
  prompt: "Add <script>alert(1)</script>",
  source: "cli",
  createdBy: "ana",
  url: "http://h/r/tok",
  phases: [{ phase: "queued", at: "2026-01-01T00:00:00Z" }],
  durationMs: 65_000,
  result: { summary: "Added x.", filesChanged: [{ path: "x.ts", additions: 3, deletions: 1 }], pushed: true },
  currentAction: null,
  todos: [],
  usage: { input: 100, output: 20, reasoning: 0, cacheRead: 0, cacheWrite: 0, cost: 0 },
  timeline: [{ kind: "tool", seq: 1, at: "2026-01-01T00:00:01Z", call: { callId: "c", tool: "edit", status: "completed", verb: "Edited", target: "<b>x.ts", seq: 1, at: "" } }],
};

describe("formatting for people", () => {
  it("summarises a finished run for the terminal", () => {
    const s = summary(view);
    expect(s).toMatch(/^✔ Done \(ready for review\) in 1m05s/);
    expect(s).toContain("x.ts  +3 -1");
    expect(s).toContain("Tokens: 120");
    expect(s).toContain("Branch: deckhand/add-x-abc12 (pushed)");
    expect(s).toContain("Run page: http://h/r/tok");
    expect(exitCodeFor(view)).toBe(0);
    expect(exitCodeFor({ ...view, status: "failed" })).toBe(1);
    expect(exitCodeFor({ ...view, status: "cancelled" })).toBe(130);
    expect(progressLine({ ...view, status: "running", currentAction: "Editing a.ts" })).toBe("[1m05s] working: Editing a.ts");
    // Plain statuses and phases, shared with the dashboard (src/runs/plain-status.ts).
    expect(progressLine({ ...view, status: "provisioning", currentAction: null, phases: [{ phase: "opencode_ready", at: "" }] })).toBe("[1m05s] starting: agent ready");
    expect(summary({ ...view, status: "cancelled", result: null })).toMatch(/^■ Cancelled \(stopped\)/);
  });
  it("escapes everything on the run page", () => {
    const html = renderRunPage(view, "+<img src=x>\n");
    expect(html).not.toContain("<script>alert(1)</script>");
    expect(html).toContain("&lt;script&gt;");
    expect(html).not.toContain("<img src=x>");
    expect(html).not.toContain("<b>x.ts");
  });
  it("parses git numstat, names branches, checks tokens, keeps to the allowlist", () => {
    expect(parseNumstat("3\t1\tsrc/a.ts\n-\t-\timg.png\n")).toEqual([
      { path: "src/a.ts", additions: 3, deletions: 1 },
      { path: "img.png", additions: 0, deletions: 0 },
    ]);
    expect(branchName("Fix the login bug in auth!!", "r-abcdefghij")).toBe("deckhand/fix-the-login-bug-in-abcde");
    expect(tokenMatches("secret", hashToken("secret"))).toBe(true);
    expect(tokenMatches("secreT", hashToken("secret"))).toBe(false);
    expect(tokenMatches("secret", null)).toBe(false);
    const repos = new RepoRegistry({ demo: "/srv/demo.git", gh: "acme/api" }, "/");
    expect(repos.url("demo")).toBe("file:///srv/demo.git");
    expect(repos.url("gh")).toBe("https://github.com/acme/api.git");
    expect(() => repos.url("other")).toThrow(UnknownRepoError);
  });
});
