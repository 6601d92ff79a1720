/**
 * The pull-request publisher against the fake GitHub (real Octokit): retries a GitHub hiccup, gets a fresh token
 * when GitHub stops accepting the cached one, falls back to the default branch when the run started from a tag,
 * and updates an open pull request for the branch instead of opening a second one.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Run } from "../../src/db/schema.ts";
import { PullRequestPublisher } from "../../src/integrations/github/publisher.ts";
import { InstallationTokens } from "../../src/integrations/github/tokens.ts";
import { createLogger } from "../../src/log/logger.ts";
import type { RunResult } from "../../src/runs/model.ts";
import { gitAuthEnv, githubWebOrigin } from "../../src/runs/repos.ts";
import { startFakeGitHub, type FakeGitHub } from "../fakes/github.ts";
import { tmpDir } from "../helpers/harness.ts";

let fake: FakeGitHub;
let work: string;
let tokens: InstallationTokens;
let publisher: PullRequestPublisher;
const log = createLogger({ level: "silent" });
const ADMIN = "ghp_fixtureAdmin";

const pexec = promisify(execFile);

/** Put a branch with one commit on the fake (as a person would), so a pull request can be opened for it. */
async function pushBranch(repo: string, branch: string, file: string) {
  const dir = path.join(work, `${repo}-${branch.replace(/\W/g, "_")}`);
  const env = { ...process.env, ...gitAuthEnv(ADMIN), GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@t", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@t" };
  // Async: the fake GitHub answers from this very process.
  await pexec("git", ["clone", "-q", `${fake.gitBaseUrl}/acme/${repo}.git`, dir], { env });
  await pexec("git", ["checkout", "-qb", branch], { cwd: dir, env });
  fs.writeFileSync(path.join(dir, file), "x\n");
  await pexec("git", ["add", "."], { cwd: dir, env });
  await pexec("git", ["commit", "-qm", "x"], { cwd: dir, env });
  await pexec("git", ["push", "-q", "origin", branch], { cwd: dir, env });
}

const run = (id: string, branch: string, ref: string | null = null) =>
  ({ id, branch, ref, title: `Task ${id}`, prompt: `Task ${id}`, source: "api", sourceRef: {}, createdBy: null, pageToken: `page-${id}` }) as unknown as Run;
const result = (): RunResult => ({
  summary: "Done.",
  filesChanged: [{ path: "x.txt", additions: 1, deletions: 0 }],
  additions: 1,
  deletions: 0,
  branch: "",
  commit: "abc",
  pushed: true,
  usage: { input: 0, output: 0, reasoning: 0, cacheRead: 0, cacheWrite: 0, cost: 0 },
});
const repoUrl = () => `${fake.gitBaseUrl}/acme/widgets.git`;

beforeAll(async () => {
  fake = await startFakeGitHub();
  fake.addPersonalToken(ADMIN);
  work = tmpDir("deckhand-gh-publisher-");
  await fake.createRepo("acme", "widgets", { "README.md": "# widgets\n" });
  tokens = new InstallationTokens({ appId: fake.appId, privateKey: fake.appPrivateKey, apiUrl: fake.apiUrl, log });
  publisher = new PullRequestPublisher({ tokens, apiUrl: fake.apiUrl, webOrigin: githubWebOrigin(fake.apiUrl), draft: true, runPageUrl: (r) => `https://d.example/r/${r.pageToken}`, log, retryDelaysMs: [10, 10] });
});
afterAll(async () => {
  await tokens?.releaseAll();
  await fake?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

describe("pull request publisher", () => {
  it("handles GitHub repos only", () => {
    expect(publisher.handles(run("r-0", "b"), repoUrl())).toBe(true);
    expect(publisher.handles(run("r-0", "b"), "file:///srv/git/x.git")).toBe(false);
    expect(publisher.handles(run("r-0", "b"), "https://gitlab.com/acme/widgets.git")).toBe(false);
  });

  it("retries a GitHub 502 and opens the pull request", async () => {
    await pushBranch("widgets", "deckhand/a", "a.txt");
    fake.failNext("/repos/acme/widgets/pulls", 2, 502);
    const r = result();
    expect(await publisher.publish(run("r-a", "deckhand/a"), r, repoUrl())).toEqual({ url: `${fake.gitBaseUrl}/acme/widgets/pull/1` });
    expect(r.pullRequestNumber).toBe(1);
    expect(fake.pulls.filter((p) => p.head === "deckhand/a")).toHaveLength(1);
  });

  it("when GitHub stops accepting the cached token, a fresh one is minted and the update goes through", async () => {
    const cached = fake.tokens.filter((t) => t.permissions.pull_requests === "write").at(-1)!;
    fake.expireToken(cached.token);
    const r = result();
    r.summary = "Done, v2.";
    expect(await publisher.publish(run("r-a", "deckhand/a"), r, repoUrl())).toEqual({ url: `${fake.gitBaseUrl}/acme/widgets/pull/1` });
    expect(fake.pulls.find((p) => p.number === 1)).toMatchObject({ updates: 1, body: expect.stringContaining("Done, v2.") });
    const fresh = fake.tokens.filter((t) => t.permissions.pull_requests === "write").at(-1)!;
    expect(fresh.token).not.toBe(cached.token);
  });

  it("a run started from a tag gets a pull request into the default branch", async () => {
    await pushBranch("widgets", "deckhand/b", "b.txt");
    const r = result();
    const out = await publisher.publish(run("r-b", "deckhand/b", "v1.0.0"), r, repoUrl());
    expect(out?.url).toMatch(/\/pull\/2$/);
    expect(fake.pulls.find((p) => p.number === 2)).toMatchObject({ head: "deckhand/b", base: "main", draft: true });
  });

  it("an open pull request for the branch (opened by anyone) is updated, not duplicated", async () => {
    await pushBranch("widgets", "deckhand/c", "c.txt");
    const res = await fetch(`${fake.apiUrl}/repos/acme/widgets/pulls`, {
      method: "POST",
      headers: { authorization: `token ${ADMIN}`, "content-type": "application/json" },
      body: JSON.stringify({ title: "by hand", head: "deckhand/c", base: "main" }),
    });
    expect(res.status).toBe(201);
    const out = await publisher.publish(run("r-c", "deckhand/c"), result(), repoUrl());
    expect(out?.url).toMatch(/\/pull\/3$/);
    expect(fake.pulls.filter((p) => p.head === "deckhand/c")).toMatchObject([{ number: 3, title: "Task r-c", updates: 1 }]);
  });

  it("a refusal is reported on the result, not thrown", async () => {
    const r = result();
    expect(await publisher.publish(run("r-d", "deckhand/does-not-exist"), r, repoUrl())).toBeNull();
    expect(r.pullRequestError).toMatch(/^No pull request: GitHub refused the pull request: Validation Failed; head invalid/);
  });
});
