/** The agent's words on surfaces that leave the building: quoted, attributed, mentions/links/images made inert. */
import { describe, expect, it } from "vitest";
import { neutralizeAgentMarkdown, quoteAgent } from "../../src/integrations/agent-words.ts";
import { pullRequestBody } from "../../src/integrations/github/pull-request.ts";
import { isProtectedBranch, guardBranch } from "../../src/runs/branch-guard.ts";

describe("neutralizeAgentMarkdown", () => {
  it("makes @mentions inert: written as code, nobody is notified", () => {
    expect(neutralizeAgentMarkdown("cc @octocat and @acme/security-team please")).toBe("cc `@octocat` and `@acme/security-team` please");
    // An e-mail address is not a mention.
    expect(neutralizeAgentMarkdown("mail me at a@b.example")).toBe("mail me at a@b.example");
  });
  it("links and bare URLs are shown, not followed; images are not loaded; raw HTML is not rendered", () => {
    expect(neutralizeAgentMarkdown("see [the fix](https://evil.example/x)")).toBe("see the fix (`https://evil.example/x`)");
    expect(neutralizeAgentMarkdown("go to https://evil.example/login now")).toBe("go to `https://evil.example/login` now");
    expect(neutralizeAgentMarkdown("![tracker](https://evil.example/p.png)")).toBe("[image: tracker]");
    expect(neutralizeAgentMarkdown('<img src="https://evil.example/p.png">')).not.toMatch(/<img/);
    expect(neutralizeAgentMarkdown("[x]: https://evil.example")).toBe("\\[x]: `https://evil.example`");
    // Links whose label holds brackets or another link, and reference-style links to a scheme-less target: no link.
    expect(neutralizeAgentMarkdown("[[x](u)](//evil.example)")).toBe("x (`u`) (`//evil.example`)");
    expect(neutralizeAgentMarkdown("[[claim]](//evil.example)")).toBe("[[claim]]\\(//evil.example)");
    expect(neutralizeAgentMarkdown("[![a](b)](//evil.example)")).toBe("[[image: a]]\\(//evil.example)");
    expect(neutralizeAgentMarkdown("see [the fix][1]\n\n[1]: //evil.example")).toBe("see [the fix][1]\n\n\\[1]: //evil.example");
  });
  it("quoteAgent attributes the words to the agent and quotes every line", () => {
    const q = quoteAgent("Done.\nAll tests pass @boss");
    expect(q).toBe("**The agent's summary** (its own words, not checked by Deckhand):\n\n> Done.\n> All tests pass `@boss`");
  });
  it("a pull-request body quotes the agent's summary and links the signed-in run page", () => {
    const body = pullRequestBody(
      { id: "r-abc", title: "t", prompt: "do it", source: "api", sourceRef: {}, createdBy: "ana" },
      { summary: "Fixed it. Ping @everyone ![x](https://evil.example/a.png)", filesChanged: [], additions: 0, deletions: 0 },
      "https://deckhand.example/runs/r-abc",
    );
    expect(body).toContain("**The agent's summary** (its own words, not checked by Deckhand):\n\n> Fixed it. Ping `@everyone` [image: x]");
    expect(body).not.toMatch(/!\[|\]\(https:\/\/evil/);
    expect(body).toContain("[r-abc](https://deckhand.example/runs/r-abc)");
  });
});

describe("branch guard", () => {
  it("main, master, release/*, HEAD and the default branch are protected; a run's own branches are not", () => {
    for (const b of ["main", "master", "Main", "release/1.2", "release", "HEAD", "refs/heads/main"]) expect(isProtectedBranch(b), b).toBe(true);
    expect(isProtectedBranch("trunk", "trunk")).toBe(true);
    expect(isProtectedBranch("trunk", "origin/trunk")).toBe(true);
    for (const b of ["deckhand/fix-login-abcde", "ana/eng-12-fix", "releases-notes", "mainline-docs"]) expect(isProtectedBranch(b), b).toBe(false);
  });
  it("a protected name becomes deckhand/<slug>; others are kept", () => {
    expect(guardBranch("main", "r-abcdefghij")).toBe("deckhand/main-abcde");
    expect(guardBranch("release/2.0", "r-abcdefghij")).toBe("deckhand/release-2-0-abcde");
    expect(guardBranch("develop", "r-abcdefghij", "develop")).toBe("deckhand/develop-abcde");
    expect(guardBranch("ana/eng-12-fix", "r-abcdefghij")).toBe("ana/eng-12-fix");
    // A continuation of an earlier run starts from, and pushes to, Deckhand's own branch.
    expect(guardBranch("deckhand/fix-login-abcde", "r-klmnopqrst", "deckhand/fix-login-abcde")).toBe("deckhand/fix-login-abcde");
    expect(guardBranch("main", "r-abcdefghij", "deckhand/x")).toBe("deckhand/main-abcde");
  });
});
