import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { Octokit } from "@octokit/rest";
import { createAppAuth } from "@octokit/auth-app";
import { startFakeGitHub, type FakeGitHub } from "./github.ts";

let fake: FakeGitHub;
let work: string;
let gitEnv: NodeJS.ProcessEnv;

function git(args: string[], cwd?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("git", args, { cwd, env: gitEnv, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
const authHeader = (token: string) =>
  `http.extraHeader=Authorization: Basic ${Buffer.from(`x-access-token:${token}`).toString("base64")}`;
const cloneUrl = (repo: string) => `${fake.gitBaseUrl}/acme/${repo}.git`;

function appOctokit() {
  return new Octokit({
    baseUrl: fake.apiUrl,
    authStrategy: createAppAuth,
    auth: { appId: fake.appId, privateKey: fake.appPrivateKey, installationId: fake.installationId },
    log: { debug() {}, info() {}, warn() {}, error() {} },
  });
}
async function mint(repositoryNames: string[], permissions: Record<string, "read" | "write">) {
  const auth = (await appOctokit().auth({
    type: "installation",
    installationId: fake.installationId,
    repositoryNames,
    permissions,
  })) as { token: string; permissions: Record<string, string>; repositoryNames?: string[] };
  return auth;
}
// Plain token client: no auth-app hook, so a 401 is not retried for "token replication delay".
const tokenOctokit = (token: string) =>
  new Octokit({ baseUrl: fake.apiUrl, auth: token, log: { debug() {}, info() {}, warn() {}, error() {} } });

beforeAll(async () => {
  fake = await startFakeGitHub();
  work = await fs.mkdtemp(path.join(os.tmpdir(), "fake-github-test-"));
  await fs.mkdir(path.join(work, "home"));
  gitEnv = {
    PATH: process.env.PATH,
    HOME: path.join(work, "home"),
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_TERMINAL_PROMPT: "0",
    GIT_AUTHOR_NAME: "Test",
    GIT_AUTHOR_EMAIL: "t@example.invalid",
    GIT_COMMITTER_NAME: "Test",
    GIT_COMMITTER_EMAIL: "t@example.invalid",
    LANG: "C",
  };
  await fake.createRepo("acme", "widgets", { "README.md": "# widgets\n", "src/index.ts": "export {};\n" });
  await fake.createRepo("acme", "secret", { "PLANS.md": "top secret\n" });
});
afterAll(async () => {
  await fake?.close();
  if (work) await fs.rm(work, { recursive: true, force: true });
});

describe("fake GitHub", () => {
  let readToken: string;
  let writeToken: string;

  it("app JWT auth: lists installations, finds the repo installation, refuses a foreign key", async () => {
    const octokit = appOctokit();
    const { data: installations } = await octokit.rest.apps.listInstallations();
    expect(installations.map((i) => i.id)).toEqual([fake.installationId]);
    const { data: inst } = await octokit.rest.apps.getRepoInstallation({ owner: "acme", repo: "widgets" });
    expect(inst.id).toBe(fake.installationId);
    expect(fake.requests.some((r) => r.auth === "jwt" && r.path.endsWith("/repos/acme/widgets/installation"))).toBe(true);

    const otherKey = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" });
    const impostor = new Octokit({
      baseUrl: fake.apiUrl,
      authStrategy: createAppAuth,
      auth: { appId: fake.appId, privateKey: otherKey.toString() },
      log: { debug() {}, info() {}, warn() {}, error() {} },
    });
    await expect(impostor.rest.apps.listInstallations()).rejects.toMatchObject({ status: 401 });
  });

  it("mints a repo-scoped read token and records it", async () => {
    const auth = await mint(["widgets"], { contents: "read" });
    readToken = auth.token;
    expect(readToken).toMatch(/^ghs_/);
    expect(auth.repositoryNames).toEqual(["widgets"]);
    const rec = fake.tokens.find((t) => t.token === readToken)!;
    expect(rec).toMatchObject({
      installationId: fake.installationId,
      repositories: ["widgets"],
      permissions: { contents: "read", metadata: "read" },
      revoked: false,
    });
    expect(Date.parse(rec.expiresAt)).toBeGreaterThan(Date.now() + 50 * 60_000);

    // Unknown repository / ungranted permission → 422 like GitHub
    await expect(mint(["nope"], { contents: "read" })).rejects.toMatchObject({ status: 422 });
    await expect(mint(["widgets"], { administration: "write" })).rejects.toMatchObject({ status: 422 });
  });

  it("git: clones with a read token passed by header only; push is refused with 403", async () => {
    const dir = path.join(work, "read-clone");
    const clone = await git(["-c", authHeader(readToken), "clone", "-q", cloneUrl("widgets"), dir]);
    expect(clone.stderr).toBe("");
    expect(clone.code).toBe(0);
    expect(await fs.readFile(path.join(dir, "src/index.ts"), "utf8")).toBe("export {};\n");
    const config = await fs.readFile(path.join(dir, ".git/config"), "utf8");
    expect(config).toContain(cloneUrl("widgets"));
    expect(config).not.toContain(readToken);
    expect(config.toLowerCase()).not.toContain("authorization");

    await fs.writeFile(path.join(dir, "x.txt"), "x\n");
    await git(["add", "."], dir);
    await git(["commit", "-qm", "x"], dir);
    const push = await git(["-c", authHeader(readToken), "push", "origin", "HEAD:refs/heads/nope"], dir);
    expect(push.code).not.toBe(0);
    expect(push.stderr).toContain("403");
    expect(await fake.branchHead("acme", "widgets", "nope")).toBeNull();

    // No credentials at all → 401 with GitHub's Basic challenge
    const res = await fetch(`${cloneUrl("widgets")}/info/refs?service=git-upload-pack`);
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe('Basic realm="GitHub"');
    const anon = await git(["clone", "-q", cloneUrl("widgets"), path.join(work, "anon")]);
    expect(anon.code).not.toBe(0);
  });

  it("git: gzip'd request bodies reach git http-backend (protocol v2 ls-refs)", async () => {
    const body = gzipSync(Buffer.from("0014command=ls-refs\n" + "0000"));
    const res = await fetch(`${cloneUrl("widgets")}/git-upload-pack`, {
      method: "POST",
      headers: {
        authorization: `Basic ${Buffer.from(`x-access-token:${readToken}`).toString("base64")}`,
        "content-type": "application/x-git-upload-pack-request",
        "content-encoding": "gzip",
        "git-protocol": "version=2",
      },
      body,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/x-git-upload-pack-result");
    const text = await res.text();
    expect(text).toContain(`${await fake.branchHead("acme", "widgets", "main")} refs/heads/main`);
  });

  it("git: a token for repo A cannot clone repo B", async () => {
    const res = await git(["-c", authHeader(readToken), "clone", "-q", cloneUrl("secret"), path.join(work, "b")]);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/not found|404/i);
    await expect(tokenOctokit(readToken).rest.repos.get({ owner: "acme", repo: "secret" })).rejects.toMatchObject({
      status: 404,
    });
  });

  it("git: a write token pushes a branch that branchHead/fileAt see", async () => {
    writeToken = (await mint(["widgets"], { contents: "write", pull_requests: "write" })).token;
    const dir = path.join(work, "write-clone");
    expect((await git(["-c", authHeader(writeToken), "clone", "-q", cloneUrl("widgets"), dir])).code).toBe(0);
    await git(["checkout", "-qb", "deckhand/feature"], dir);
    await fs.writeFile(path.join(dir, "feature.txt"), "hello\n");
    await git(["add", "."], dir);
    await git(["commit", "-qm", "feature"], dir);
    const push = await git(["-c", authHeader(writeToken), "push", "-q", "origin", "deckhand/feature"], dir);
    expect(push.stderr).toBe("");
    expect(push.code).toBe(0);
    const local = (await git(["rev-parse", "HEAD"], dir)).stdout.trim();
    expect(await fake.branchHead("acme", "widgets", "deckhand/feature")).toBe(local);
    expect(await fake.fileAt("acme", "widgets", "deckhand/feature", "feature.txt")).toBe("hello\n");
    expect(await fake.fileAt("acme", "widgets", "main", "feature.txt")).toBeNull();
    expect(await fake.branchHead("acme", "widgets", "nope")).toBeNull();
  });

  it("pulls: create, list by head, update, comment; read token gets 403", async () => {
    const gh = tokenOctokit(writeToken);
    const { data: repo } = await gh.rest.repos.get({ owner: "acme", repo: "widgets" });
    expect(repo.default_branch).toBe("main");

    await expect(
      tokenOctokit(readToken).rest.pulls.create({ owner: "acme", repo: "widgets", title: "t", head: "deckhand/feature", base: "main" }),
    ).rejects.toMatchObject({ status: 403, message: expect.stringContaining("Resource not accessible by integration") });

    const { data: created, status } = await gh.rest.pulls.create({
      owner: "acme",
      repo: "widgets",
      title: "Add feature",
      head: "deckhand/feature",
      base: "main",
      body: "body v1",
      draft: true,
    });
    expect(status).toBe(201);
    expect(created).toMatchObject({ number: 1, draft: true, state: "open", head: { ref: "deckhand/feature" }, base: { ref: "main" } });
    expect(created.html_url).toBe(`${fake.gitBaseUrl}/acme/widgets/pull/1`);
    expect(created.head.sha).toBe(await fake.branchHead("acme", "widgets", "deckhand/feature"));

    // Duplicate → 422 like GitHub
    await expect(
      gh.rest.pulls.create({ owner: "acme", repo: "widgets", title: "again", head: "deckhand/feature", base: "main" }),
    ).rejects.toMatchObject({ status: 422 });

    const { data: listed } = await gh.rest.pulls.list({ owner: "acme", repo: "widgets", head: "acme:deckhand/feature", state: "open" });
    expect(listed.map((p) => p.number)).toEqual([1]);
    const { data: none } = await gh.rest.pulls.list({ owner: "acme", repo: "widgets", head: "acme:other", state: "open" });
    expect(none).toEqual([]);

    const { data: updated } = await gh.rest.pulls.update({ owner: "acme", repo: "widgets", pull_number: 1, title: "Add feature v2", body: "body v2" });
    expect(updated.title).toBe("Add feature v2");
    expect(fake.pulls[0]).toMatchObject({ number: 1, title: "Add feature v2", body: "body v2", updates: 1, head: "deckhand/feature" });

    const { status: cs } = await gh.rest.issues.createComment({ owner: "acme", repo: "widgets", issue_number: 1, body: "hi" });
    expect(cs).toBe(201);
    expect(fake.comments).toMatchObject([{ issueNumber: 1, body: "hi" }]);

    const { data: rl } = await gh.rest.rateLimit.get();
    expect(rl.resources.core.limit).toBe(5000);
  });

  it("revoking (DELETE /installation/token) makes both API and git refuse the token", async () => {
    const gh = tokenOctokit(writeToken);
    const { status } = await gh.request("DELETE /installation/token");
    expect(status).toBe(204);
    expect(fake.tokens.find((t) => t.token === writeToken)!.revoked).toBe(true);
    await expect(gh.rest.repos.get({ owner: "acme", repo: "widgets" })).rejects.toMatchObject({
      status: 401,
      response: { data: { message: "Bad credentials" } },
    });
    const ls = await git(["-c", authHeader(writeToken), "ls-remote", cloneUrl("widgets")]);
    expect(ls.code).not.toBe(0);
    expect(ls.stderr).toMatch(/401|Authentication failed|could not read Username/i);
  });

  it("expired tokens get 401; personal tokens are unscoped; failNext injects failures", async () => {
    const t = (await mint(["widgets"], { contents: "read" })).token;
    expect((await tokenOctokit(t).rest.repos.get({ owner: "acme", repo: "widgets" })).status).toBe(200);
    fake.expireToken(t);
    await expect(tokenOctokit(t).rest.repos.get({ owner: "acme", repo: "widgets" })).rejects.toMatchObject({ status: 401 });

    fake.addPersonalToken("ghp_personal");
    const pat = tokenOctokit("ghp_personal");
    expect((await pat.rest.repos.get({ owner: "acme", repo: "secret" })).data.full_name).toBe("acme/secret");
    const ls = await git(["-c", authHeader("ghp_personal"), "ls-remote", cloneUrl("secret")]);
    expect(ls.code).toBe(0);
    expect(ls.stdout).toContain("refs/heads/main");

    fake.failNext("/repos/acme/secret", 1, 502);
    await expect(pat.rest.repos.get({ owner: "acme", repo: "secret" })).rejects.toMatchObject({ status: 502 });
    expect((await pat.rest.repos.get({ owner: "acme", repo: "secret" })).status).toBe(200);
  });

  it("a token minted without explicit permissions/repositories gets the whole installation", async () => {
    const octokit = appOctokit(); // REST calls through the auth-app hook use such a token
    const { data } = await octokit.rest.repos.get({ owner: "acme", repo: "secret" });
    expect(data.name).toBe("secret");
    const rec = fake.tokens[fake.tokens.length - 1]!;
    expect(rec.repositories).toBeUndefined();
    expect(rec.permissions).toMatchObject({ contents: "write", pull_requests: "write" });
  });
});
