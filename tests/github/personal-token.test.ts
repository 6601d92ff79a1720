/**
 * The fallback: a personal token (GITHUB_TOKEN) instead of a GitHub App, with a warning that it is not scoped. Next to
 * it, a repository that is not on GitHub keeps the old behaviour: pushed where the remote allows, the run page as link.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mountGitHub } from "../../src/integrations/github/mount.ts";
import { createLogger } from "../../src/log/logger.ts";
import { startFakeGitHub, type FakeGitHub } from "../fakes/github.ts";
import { scripts } from "../fakes/model-server.ts";
import { makeRepo, startTestServer, type TestServer } from "../helpers/harness.ts";

const PAT = "ghp_deckhandTestPersonalToken0123456789";
let fake: FakeGitHub;
let srv: TestServer;
let local: ReturnType<typeof makeRepo>;
let mountLine = "";
const logLines: string[] = [];

beforeAll(async () => {
  fake = await startFakeGitHub();
  fake.addPersonalToken(PAT);
  await fake.createRepo("acme", "widgets", { "README.md": "# widgets\n" }, "trunk");
  local = makeRepo({ "README.md": "# local\n" });
  srv = await startTestServer({
    handler: scripts.writeFile("hello.txt", "hello\n", "Wrote hello.txt."),
    repos: { widgets: `${fake.gitBaseUrl}/acme/widgets.git`, local: local.bare },
    env: { GITHUB_TOKEN: PAT, GITHUB_API_URL: fake.apiUrl, GITHUB_PR_DRAFT: "false" },
    log: createLogger({ level: "debug", destination: { write: (s: string) => void logLines.push(s) } }),
  });
  mountLine = await mountGitHub(srv.deckhand);
}, 120_000);

afterAll(async () => {
  await srv?.close();
  await fake?.close();
});

describe("GitHub delivery with a personal token", () => {
  it("warns that the token is not scoped", () => {
    expect(mountLine).toBe("github: personal token (GITHUB_TOKEN, not scoped) for widgets; pull requests ready for review");
    expect(logLines.join("")).toContain("GITHUB_TOKEN is a personal token: it is not scoped");
  });

  it("a GitHub repo gets a ready-for-review PR against its default branch; a local repo is pushed and links the run page", async () => {
    const gh = (await srv.api("POST", "/api/runs", { repo: "widgets", prompt: "Create hello.txt" })).body.id;
    const lo = (await srv.api("POST", "/api/runs", { repo: "local", prompt: "Create hello.txt" })).body.id;
    const [a, b] = await Promise.all([srv.waitFor(gh, ["idle", "failed"], 120_000), srv.waitFor(lo, ["idle", "failed"], 120_000)]);
    expect(a.status, a.reason).toBe("idle");
    expect(b.status, b.reason).toBe("idle");

    expect(a.result).toMatchObject({ pushed: true, pullRequestUrl: `${fake.gitBaseUrl}/acme/widgets/pull/1`, url: `${fake.gitBaseUrl}/acme/widgets/pull/1` });
    expect(fake.pulls).toHaveLength(1);
    expect(fake.pulls[0]).toMatchObject({ head: a.branch, base: "trunk", draft: false, title: "Create hello.txt" });
    expect(await fake.fileAt("acme", "widgets", a.branch, "hello.txt")).toBe("hello\n");
    // Clone and push used the personal token; no installation token exists.
    expect(fake.tokens).toEqual([]);
    expect(fake.requests.some((r) => r.auth === PAT && r.path.endsWith("git-receive-pack") && r.status === 200)).toBe(true);

    expect(b.result).toMatchObject({ pushed: true, url: `${b.url}#diff` });
    expect(b.result.pullRequestUrl).toBeUndefined();
    expect(local.git(["show", `${b.branch}:hello.txt`])).toBe("hello");

    // The token is nowhere to be seen.
    const b64 = Buffer.from(`x-access-token:${PAT}`).toString("base64");
    for (const text of [logLines.join(""), JSON.stringify((await srv.api("GET", `/api/runs/${gh}`)).body), await fetch(a.url).then((r) => r.text())]) {
      expect(text).not.toContain(PAT);
      expect(text).not.toContain(b64);
    }
  }, 150_000);

  it("GitHub refusing the pull request leaves the branch pushed, the run page as the link, and says why", async () => {
    fake.failNext("/repos/acme/widgets/pulls", 10, 403);
    const id = (await srv.api("POST", "/api/runs", { repo: "widgets", prompt: "Create hello.txt again" })).body.id;
    const done = await srv.waitFor(id, ["idle", "failed"], 120_000);
    expect(done.status, done.reason).toBe("idle");
    expect(done.result).toMatchObject({ pushed: true, url: `${done.url}#diff` });
    expect(done.result.pullRequestUrl).toBeUndefined();
    expect(done.result.pullRequestError).toMatch(/^No pull request: GitHub refused .*Pull requests: write.* on acme\/widgets$/);
    expect(await fake.fileAt("acme", "widgets", done.branch, "hello.txt")).toBe("hello\n");
  }, 150_000);
});
