/**
 * GitHub App tokens per run against the fake GitHub (real @octokit/auth-app + real git over smart HTTP):
 * scoped to one repository and the asked permissions, cached, refreshed before expiry, revoked when released.
 */
import { execFile } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GitHubCredentials } from "../../src/integrations/github/credentials.ts";
import { InstallationTokens, normalizePrivateKey, PersonalToken } from "../../src/integrations/github/tokens.ts";
import { createLogger } from "../../src/log/logger.ts";
import { gitAuthEnv, githubWebOrigin, RepoRegistry } from "../../src/runs/repos.ts";
import { startFakeGitHub, type FakeGitHub } from "../fakes/github.ts";
import { tmpDir } from "../helpers/harness.ts";

const pexec = promisify(execFile);
let gh: FakeGitHub;
let work: string;
const log = createLogger({ level: "silent" });

async function git(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}) {
  try {
    const r = await pexec("git", args, {
      cwd: opts.cwd,
      env: { PATH: process.env.PATH!, HOME: work, GIT_CONFIG_NOSYSTEM: "1", GIT_TERMINAL_PROMPT: "0", GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@t", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@t", ...opts.env },
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === "number" ? x.code : 1, stdout: x.stdout ?? "", stderr: x.stderr ?? "" };
  }
}

const app = (now?: () => number) => new InstallationTokens({ appId: gh.appId, privateKey: gh.appPrivateKey, apiUrl: gh.apiUrl, log, now });
const rec = (token: string) => gh.tokens.find((t) => t.token === token)!;

beforeAll(async () => {
  gh = await startFakeGitHub();
  work = tmpDir("deckhand-gh-tokens-");
  await gh.createRepo("acme", "widgets", { "README.md": "# widgets\n" });
  await gh.createRepo("acme", "secret", { "PLANS.md": "top secret\n" });
});
afterAll(async () => {
  await gh?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

describe("GitHub App tokens per run", () => {
  it("the clone token is read-only and scoped to the run's repository: clone works, push is refused, other repos are invisible; released = revoked", async () => {
    const tokens = app();
    const reg = new RepoRegistry({ widgets: "acme/widgets", secret: "acme/secret" }, work, githubWebOrigin(gh.apiUrl));
    reg.addCredentials(new GitHubCredentials(tokens, githubWebOrigin(gh.apiUrl)));
    expect(reg.url("widgets")).toBe(`${gh.gitBaseUrl}/acme/widgets.git`);

    const access = await reg.cloneAccess("widgets", "r-one");
    const token = Buffer.from(access.env.GIT_CONFIG_VALUE_0!.replace("Authorization: Basic ", ""), "base64").toString().split(":")[1]!;
    expect(rec(token)).toMatchObject({ repositories: ["widgets"], permissions: { contents: "read", metadata: "read" }, revoked: false });

    const dir = path.join(work, "clone");
    const clone = await git(["clone", "-q", access.url, dir], { env: access.env });
    expect(clone.code, clone.stderr).toBe(0);
    expect(fs.readFileSync(path.join(dir, "README.md"), "utf8")).toBe("# widgets\n");
    expect(fs.readFileSync(path.join(dir, ".git/config"), "utf8")).not.toContain(token);

    fs.writeFileSync(path.join(dir, "x.txt"), "x\n");
    await git(["add", "."], { cwd: dir });
    await git(["commit", "-qm", "x"], { cwd: dir });
    const push = await git(["push", "origin", "HEAD:refs/heads/sneaky"], { cwd: dir, env: access.env });
    expect(push.code).not.toBe(0);
    expect(push.stderr).toContain("403");
    expect(await gh.branchHead("acme", "widgets", "sneaky")).toBeNull();
    const other = await git(["ls-remote", reg.url("secret")], { env: access.env });
    expect(other.code).not.toBe(0);

    await access.release();
    expect(rec(token).revoked).toBe(true);
    expect((await git(["ls-remote", access.url], { env: access.env })).code).not.toBe(0);
    expect(tokens.holds("r-one")).toBe(false);
  });

  it("the push token can push, only to its repository, and is revoked on release", async () => {
    const tokens = app();
    const reg = new RepoRegistry({ widgets: "acme/widgets" }, work, githubWebOrigin(gh.apiUrl));
    reg.addCredentials(new GitHubCredentials(tokens, githubWebOrigin(gh.apiUrl)));
    const read = await reg.cloneAccess("widgets", "r-two");
    const dir = path.join(work, "clone2");
    expect((await git(["clone", "-q", read.url, dir], { env: read.env })).code).toBe(0);
    await read.release();
    fs.writeFileSync(path.join(dir, "y.txt"), "y\n");
    await git(["add", "."], { cwd: dir });
    await git(["commit", "-qm", "y"], { cwd: dir });

    const access = await reg.pushAccess("widgets", "r-two");
    const push = await git(["push", "-q", access.url, "HEAD:refs/heads/deckhand/y"], { cwd: dir, env: access.env });
    expect(push.code, push.stderr).toBe(0);
    expect(await gh.fileAt("acme", "widgets", "deckhand/y", "y.txt")).toBe("y\n");
    const minted = gh.tokens.at(-1)!;
    expect(minted).toMatchObject({ repositories: ["widgets"], permissions: { contents: "write", metadata: "read" } });
    await access.release();
    expect(minted.revoked).toBe(true);
  });

  it("tokens are cached per run + repo + permissions and refreshed before they expire", async () => {
    let clock = Date.now();
    const tokens = app(() => clock);
    const repo = { owner: "acme", repo: "widgets" };
    const a = await tokens.acquire("r-3", repo, { pull_requests: "write" });
    expect(await tokens.acquire("r-3", repo, { pull_requests: "write" })).toBe(a);
    // Another run, another permission set, another repo: other tokens.
    const b = await tokens.acquire("r-4", repo, { pull_requests: "write" });
    const c = await tokens.acquire("r-3", repo, { contents: "read" });
    const d = await tokens.acquire("r-3", { owner: "acme", repo: "secret" }, { pull_requests: "write" });
    expect(new Set([a, b, c, d]).size).toBe(4);
    expect(rec(d).repositories).toEqual(["secret"]);
    // Concurrent asks share one mint.
    const minted = gh.tokens.length;
    const [e1, e2] = await Promise.all([tokens.acquire("r-5", repo, { contents: "read" }), tokens.acquire("r-5", repo, { contents: "read" })]);
    expect(e1).toBe(e2);
    expect(gh.tokens.length).toBe(minted + 1);

    // 55 minutes later the hour-long token is close to expiry: a fresh one, and the old one revoked.
    clock += 55 * 60_000;
    const fresh = await tokens.acquire("r-3", repo, { pull_requests: "write" });
    expect(fresh).not.toBe(a);
    await expect.poll(() => rec(a).revoked).toBe(true);
    expect(rec(fresh).revoked).toBe(false);

    // The run ends: everything it holds is revoked; other runs keep theirs.
    expect(tokens.holds("r-3")).toBe(true);
    await tokens.releaseRun("r-3");
    expect([fresh, c, d].map((t) => rec(t).revoked)).toEqual([true, true, true]);
    expect(tokens.holds("r-3")).toBe(false);
    expect(rec(b).revoked).toBe(false);
    await tokens.releaseAll();
    expect(rec(b).revoked).toBe(true);
  });

  it("a repository the App is not installed on gives a clear error; a bad key is refused", async () => {
    await expect(app().acquire("r-6", { owner: "acme", repo: "nope" }, { contents: "read" })).rejects.toThrow(/not installed on acme\/nope/);
    const otherKey = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs1", format: "pem" }).toString();
    const impostor = new InstallationTokens({ appId: gh.appId, privateKey: otherKey, apiUrl: gh.apiUrl, log });
    await expect(impostor.check()).rejects.toMatchObject({ status: 401 });
    await expect(app().check()).resolves.toEqual({ slug: "deckhand-fake" });
  });

  it("GitHub failing to mint is retryable (provisioning tries again); a refused permission is not", async () => {
    const tokens = app();
    gh.failNext(`/app/installations/${gh.installationId}/access_tokens`, 1, 502);
    await expect(tokens.acquire("r-8", { owner: "acme", repo: "widgets" }, { contents: "read" })).rejects.toMatchObject({ name: "GitHubAuthError", retryable: true });
    await expect(tokens.acquire("r-8", { owner: "acme", repo: "widgets" }, { administration: "write" })).rejects.toMatchObject({ retryable: false, message: expect.stringContaining("administration:write") });
    expect(await tokens.acquire("r-8", { owner: "acme", repo: "widgets" }, { contents: "read" })).toMatch(/^ghs_/);
    await tokens.releaseAll();
  });

  it("GITHUB_APP_PRIVATE_KEY may be a PEM with \\n escapes, base64, or a file path", () => {
    const pem = gh.appPrivateKey.trim();
    expect(normalizePrivateKey(pem.replace(/\n/g, "\\n"))).toBe(`${pem}\n`);
    expect(normalizePrivateKey(Buffer.from(pem).toString("base64"))).toBe(`${pem}\n`);
    const file = path.join(work, "app.pem");
    fs.writeFileSync(file, gh.appPrivateKey);
    expect(normalizePrivateKey(file)).toBe(`${pem}\n`);
    expect(() => normalizePrivateKey("not a key")).toThrow(/not a PEM private key/);
  });

  it("a personal token is the same unscoped token for everything and is never revoked", async () => {
    const pat = new PersonalToken("ghp_example");
    expect(pat.scoped).toBe(false);
    expect(await pat.acquire()).toBe("ghp_example");
    gh.addPersonalToken("ghp_example");
    const creds = new GitHubCredentials(pat, githubWebOrigin(gh.apiUrl));
    const url = `${gh.gitBaseUrl}/acme/secret.git`;
    expect(creds.handles(url)).toBe(true);
    expect(creds.handles("https://gitlab.com/acme/secret.git")).toBe(false);
    const ls = await git(["ls-remote", url], { env: gitAuthEnv(await creds.pushToken(url, "r-7")) });
    expect(ls.stdout).toContain("refs/heads/main");
  });
});
