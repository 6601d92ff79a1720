/** What a run's pull request says, where GitHub repos are recognised: pure decisions, no I/O. */
import { describe, expect, it } from "vitest";
import { MAX_BODY, pullRequestBody, pullRequestTitle, sourceLink } from "../../src/integrations/github/pull-request.ts";
import { parseGitHubRepo } from "../../src/integrations/github/repo-url.ts";
import { githubWebOrigin, RepoRegistry } from "../../src/runs/repos.ts";

const run = (over: Partial<Parameters<typeof pullRequestBody>[0] & { title: string }> = {}) => ({
  id: "r-abc",
  title: "Add a greeting to the README",
  prompt: "Add a greeting to the README\nand keep it short",
  source: "api",
  sourceRef: {},
  createdBy: null as string | null,
  ...over,
});
const result = {
  summary: "I added a greeting.",
  filesChanged: [
    { path: "README.md", additions: 2, deletions: 1 },
    { path: "src/hello.ts", additions: 5, deletions: 0 },
  ],
  additions: 7,
  deletions: 1,
};

describe("pull request title and body", () => {
  it("title is the task; a Linear run's title starts with the issue identifier so Linear links the PR", () => {
    expect(pullRequestTitle(run())).toBe("Add a greeting to the README");
    const linear = run({ source: "linear", sourceRef: { identifier: "ENG-123", issueUrl: "https://linear.app/acme/issue/ENG-123/x", issueId: "i", workspaceId: "w", mode: "agent" } });
    expect(pullRequestTitle(linear)).toBe("ENG-123: Add a greeting to the README");
    // Not twice when the title already names it.
    expect(pullRequestTitle({ ...linear, title: "ENG-123 Add a greeting" })).toBe("ENG-123 Add a greeting");
    expect(pullRequestTitle(run({ title: "x".repeat(400) })).length).toBe(256);
  });

  it("body has the summary, the files changed, the task, the link back to Slack and the run page", () => {
    const body = pullRequestBody(
      run({ source: "slack", sourceRef: { channel: "C0123", threadTs: "1700000000.123456", teamDomain: "acme" }, createdBy: "U42" }),
      result,
      "https://deckhand.example.com/r/tok",
    );
    expect(body).toContain("I added a greeting.");
    expect(body).toContain("### Files changed (2, +7 −1)");
    expect(body).toContain("- `README.md` (+2 −1)");
    expect(body).toContain("- `src/hello.ts` (+5 −0)");
    expect(body).toContain("> Add a greeting to the README and keep it short");
    expect(body).toContain("Requested in [the Slack thread](https://acme.slack.com/archives/C0123/p1700000000123456) by U42");
    expect(body).toContain("Run: [r-abc](https://deckhand.example.com/r/tok)");
  });

  it("body links the Linear issue by identifier", () => {
    const body = pullRequestBody(
      run({ source: "linear", sourceRef: { identifier: "ENG-7", issueUrl: "https://linear.app/acme/issue/ENG-7/fix" } }),
      result,
      "https://d/r/t",
    );
    expect(body).toContain("Linear issue: [ENG-7](https://linear.app/acme/issue/ENG-7/fix)");
  });

  it("a huge summary is shortened but the links stay; no summary says so", () => {
    const body = pullRequestBody(run(), { ...result, summary: "y".repeat(200_000) }, "https://d/r/t");
    expect(body.length).toBeLessThanOrEqual(MAX_BODY);
    expect(body).toContain("summary shortened");
    expect(body).toContain("Run: [r-abc](https://d/r/t)");
    expect(pullRequestBody(run(), { ...result, summary: null }, "https://d/r/t")).toContain("The agent left no summary.");
  });

  it("source links: Slack permalink wins, channel+ts otherwise; unknown shapes give none; non-http URLs are ignored", () => {
    expect(sourceLink(run({ source: "slack", sourceRef: { permalink: "https://acme.slack.com/archives/C1/p1" } }))?.url).toBe("https://acme.slack.com/archives/C1/p1");
    expect(sourceLink(run({ source: "slack", sourceRef: { channelId: "C1", ts: "1.000200" } }))?.url).toBe("https://slack.com/archives/C1/p1000200");
    expect(sourceLink(run({ source: "slack", sourceRef: { channel: "C1" } }))).toBeNull();
    expect(sourceLink(run({ source: "slack", sourceRef: { permalink: "javascript:alert(1)" } }))).toBeNull();
    expect(sourceLink(run({ source: "linear", sourceRef: { issue: { identifier: "ENG-1" } } }))).toEqual({ label: "ENG-1", url: null, linearIdentifier: "ENG-1" });
    expect(sourceLink(run({ source: "cli" }))).toBeNull();
  });
});

describe("which repos are on GitHub", () => {
  it("the web origin follows GITHUB_API_URL (github.com, Enterprise, ghe.com, the test fake)", () => {
    expect(githubWebOrigin(undefined)).toBe("https://github.com");
    expect(githubWebOrigin("https://api.github.com")).toBe("https://github.com");
    expect(githubWebOrigin("https://ghe.acme.internal/api/v3")).toBe("https://ghe.acme.internal");
    expect(githubWebOrigin("https://api.acme.ghe.com")).toBe("https://acme.ghe.com");
    expect(githubWebOrigin("http://127.0.0.1:4567/api/v3")).toBe("http://127.0.0.1:4567");
  });

  it("owner/name REPOS entries become clone URLs on that origin; other remotes are left alone", () => {
    const reg = new RepoRegistry({ api: "acme/api", web: "https://github.com/acme/web.git", other: "https://gitlab.com/acme/x.git" }, "/nonexistent", "https://ghe.acme.internal");
    expect(reg.url("api")).toBe("https://ghe.acme.internal/acme/api.git");
    expect(reg.url("web")).toBe("https://github.com/acme/web.git");
    expect(parseGitHubRepo(reg.url("api"), "https://ghe.acme.internal")).toEqual({ owner: "acme", repo: "api" });
    expect(parseGitHubRepo(reg.url("web"), "https://github.com")).toEqual({ owner: "acme", repo: "web" });
    expect(parseGitHubRepo("https://github.com/acme/web", "https://github.com")).toEqual({ owner: "acme", repo: "web" });
    expect(parseGitHubRepo(reg.url("other"), "https://github.com")).toBeNull();
    expect(parseGitHubRepo("https://github.com/acme/web/tree/main", "https://github.com")).toBeNull();
    expect(parseGitHubRepo("file:///srv/git/demo.git", "https://github.com")).toBeNull();
    expect(parseGitHubRepo("http://github.com/acme/web.git", "https://github.com")).toBeNull();
  });
});
