/**
 * GitHub delivery end to end: a real Deckhand server (real bubblewrap sandbox, real OpenCode, real git) against the
 * fake GitHub (real Octokit / @octokit/auth-app on its REST API, real `git http-backend` requiring the minted
 * tokens). A run's branch becomes a pull request, a follow-up updates it, the sandbox never holds a write token,
 * and a run without changes opens nothing.
 */
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { summary } from "../../src/cli/progress.ts";
import { mountGitHub } from "../../src/integrations/github/mount.ts";
import { createLogger } from "../../src/log/logger.ts";
import type { Sandbox } from "../../src/sandbox/provider.ts";
import { startFakeGitHub, type FakeGitHub, type MintedToken } from "../fakes/github.ts";
import type { ModelHandler } from "../fakes/model-server.ts";
import { startTestServer, type TestServer } from "../helpers/harness.ts";

const FOLLOW_UP = "Also add CHANGELOG.md";
const NO_CHANGE = "Only tell me what the README says";

let fake: FakeGitHub;
let srv: TestServer;
const logLines: string[] = [];
let mountLine = "";

// The model: writes hello.txt; on the follow-up it is held busy (so the sandbox can be inspected while the agent
// works), then writes CHANGELOG.md; a question is answered without touching files.
let releaseHeld: () => void = () => {};
const held = new Promise<void>((r) => (releaseHeld = r));
let followUpSeen: () => void = () => {};
const followUpArrived = new Promise<void>((r) => (followUpSeen = r));
const handler: ModelHandler = async (req) => {
  const texts = req.userTexts.join("\n");
  if (texts.includes(NO_CHANGE)) return { text: "The README is a one-line title; nothing to change." };
  const followUp = texts.includes(FOLLOW_UP);
  if (req.lastRole === "tool") return { text: followUp ? "I added CHANGELOG.md too." : "I created hello.txt with a greeting." };
  if (followUp) {
    followUpSeen();
    await held;
    return { toolCalls: [{ name: "write", arguments: { filePath: "CHANGELOG.md", content: "# Changelog\n\n- hello.txt\n" } }] };
  }
  return { toolCalls: [{ name: "write", arguments: { filePath: "hello.txt", content: "hello from the agent\n" } }] };
};

const tokensFor = (repo: string): MintedToken[] => fake.tokens.filter((t) => t.repositories?.includes(repo));
const isWrite = (t: MintedToken) => Object.entries(t.permissions).some(([k, v]) => k !== "metadata" && v === "write");
const forms = (token: string) => [token, Buffer.from(`x-access-token:${token}`).toString("base64")];

/** The agent is still working while we look: a file or folder it removes between listing and reading is skipped. */
function gone(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === "ENOENT";
}

function hostFiles(dir: string): string[] {
  const out: string[] = [];
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if (gone(err)) return out;
    throw err;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...hostFiles(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

beforeAll(async () => {
  fake = await startFakeGitHub();
  await fake.createRepo("acme", "widgets", { "README.md": "# widgets\n", "src/index.ts": "export {};\n" });
  await fake.createRepo("acme", "gadgets", { "README.md": "# gadgets\n" });
  srv = await startTestServer({
    handler,
    // `owner/name` entries: the clone host follows GITHUB_API_URL's origin (the fake).
    repos: { widgets: "acme/widgets", gadgets: "acme/gadgets" },
    env: { GITHUB_APP_ID: String(fake.appId), GITHUB_APP_PRIVATE_KEY: fake.appPrivateKey, GITHUB_API_URL: fake.apiUrl, LOG_LEVEL: "debug" },
    log: createLogger({ level: "debug", destination: { write: (s: string) => void logLines.push(s) } }),
  });
  mountLine = await mountGitHub(srv.deckhand);
}, 120_000);

afterAll(async () => {
  await srv?.close();
  await fake?.close();
});

describe("GitHub delivery with a GitHub App", () => {
  let runId: string;
  let noChangeId: string;
  let prUrl: string;

  it("mounts with App credentials and says so", () => {
    expect(mountLine).toMatch(/^github: App \d+ for widgets, gadgets: a token per run scoped to its repository; draft pull requests$/);
  });

  it("a run with changes: cloned with a revoked-after-use read token, pushed from the backend, one draft PR linking back to Slack and the run page", async () => {
    const run = await srv.deckhand.service.start({
      repo: "widgets",
      prompt: "Create hello.txt with a greeting",
      source: "slack",
      sourceRef: { channel: "C0WIDGETS", threadTs: "1700000000.000100", teamDomain: "acme" },
      createdBy: "U123",
      // As Linear might suggest: the branch guard turns the default branch into a deckhand/ branch.
      branch: "main",
    });
    runId = run.id;
    expect(run.branch).toMatch(/^deckhand\/main-[a-z0-9]{5}$/);
    // A run without changes, at the same time, on another repository.
    noChangeId = (await srv.api("POST", "/api/runs", { repo: "gadgets", prompt: NO_CHANGE })).body.id;

    const done = await srv.waitFor(runId, ["idle", "failed", "cancelled"], 120_000);
    expect(done.status, done.reason).toBe("idle");
    prUrl = `${fake.gitBaseUrl}/acme/widgets/pull/1`;
    expect(done.result).toMatchObject({ pushed: true, pullRequestUrl: prUrl, url: prUrl, pullRequestNumber: 1 });
    expect(done.result.filesChanged).toEqual([{ path: "hello.txt", additions: 1, deletions: 0 }]);

    // The branch on GitHub has the agent's commit.
    expect(await fake.fileAt("acme", "widgets", run.branch, "hello.txt")).toBe("hello from the agent\n");
    expect(await fake.fileAt("acme", "widgets", "main", "hello.txt")).toBeNull();

    // One pull request, draft (GITHUB_PR_DRAFT defaults to true), from the run branch to the default branch.
    expect(fake.pulls).toHaveLength(1);
    const pr = fake.pulls[0]!;
    expect(pr).toMatchObject({ owner: "acme", repo: "widgets", number: 1, head: run.branch, base: "main", draft: true, title: "Create hello.txt with a greeting", updates: 0 });
    // The agent's words are quoted and attributed; the link is the sign-in-required run page, never the token link.
    expect(pr.body).toContain("**The agent's summary** (its own words, not checked by Deckhand):\n\n> I created hello.txt with a greeting.");
    expect(pr.body).toContain("- `hello.txt` (+1 −0)");
    expect(pr.body).toContain("Requested in [the Slack thread](https://acme.slack.com/archives/C0WIDGETS/p1700000000000100) by U123");
    expect(pr.body).toContain(`Run: [${runId}](${srv.deckhand.config.PUBLIC_URL}/runs/${runId})`);
    expect(pr.body).not.toContain(new URL(done.url).pathname);
    expect(pr.body).not.toContain("/r/");

    // Tokens: every one scoped to widgets. The clone's read token was used for the clone and revoked at once; the
    // push had its own contents:write token, revoked right after; the PR token is kept for later idles.
    const minted = tokensFor("widgets");
    expect(fake.tokens.filter((t) => !t.repositories)).toEqual([]);
    const read = minted.filter((t) => t.permissions.contents === "read");
    const push = minted.filter((t) => t.permissions.contents === "write");
    const prTok = minted.filter((t) => t.permissions.pull_requests === "write");
    expect(read).toHaveLength(1);
    expect(read[0]).toMatchObject({ permissions: { contents: "read", metadata: "read" }, revoked: true });
    expect(push).toHaveLength(1);
    expect(push[0]).toMatchObject({ permissions: { contents: "write", metadata: "read" }, revoked: true });
    expect(prTok).toHaveLength(1);
    expect(prTok[0]).toMatchObject({ permissions: { pull_requests: "write", metadata: "read" }, revoked: false });
    const reqs = (t: MintedToken) => fake.requests.filter((r) => r.auth === t.token);
    expect(reqs(read[0]!).some((r) => r.path.includes("/acme/widgets.git/git-upload-pack") && r.status === 200)).toBe(true);
    expect(reqs(read[0]!).some((r) => r.path.includes("git-receive-pack"))).toBe(false);
    expect(reqs(push[0]!).some((r) => r.path.includes("/acme/widgets.git/git-receive-pack") && r.status === 200)).toBe(true);
    expect(fake.requests.filter((r) => r.method === "DELETE" && r.path.endsWith("/installation/token")).map((r) => r.auth)).toEqual(
      expect.arrayContaining([read[0]!.token, push[0]!.token]),
    );
  }, 150_000);

  it("a run with no changes says so, pushes nothing and opens no pull request", async () => {
    const done = await srv.waitFor(noChangeId, ["idle", "failed", "cancelled"], 120_000);
    expect(done.status, done.reason).toBe("idle");
    expect(done.result).toMatchObject({ filesChanged: [], pushed: false, commit: null, summary: "The README is a one-line title; nothing to change." });
    expect(done.result.pullRequestUrl).toBeUndefined();
    expect(done.result.url).toBe(`${done.url}#diff`);
    expect(summary(done)).toContain("No files changed.");
    expect(fake.pulls.filter((p) => p.repo === "gadgets")).toEqual([]);
    expect(await fake.branchHead("acme", "gadgets", done.branch)).toBeNull();
    // Only the clone's read token was ever minted for it (and revoked): no write token at all.
    const minted = tokensFor("gadgets");
    expect(minted.map((t) => [t.permissions, t.revoked])).toEqual([[{ contents: "read", metadata: "read" }, true]]);
    expect((await fetch(done.url).then((r) => r.text()))).toContain("No changes yet.");
  }, 150_000);

  it("while the agent works on a follow-up, the sandbox's processes, files and git config hold no token", async () => {
    expect((await srv.api("POST", `/api/runs/${runId}/inputs`, { text: FOLLOW_UP })).status).toBe(202);
    await followUpArrived; // the model is now held busy: OpenCode and the relay are mid-turn
    await expect.poll(async () => (await srv.deckhand.store.get(runId))!.status, { timeout: 10_000 }).toBe("running");
    const row = (await srv.deckhand.store.get(runId))!;
    const sandbox = (await srv.deckhand.provider.get(row.sandboxId!)) as Sandbox;
    const p = sandbox.paths;
    const minted = tokensFor("widgets");
    expect(minted.length).toBeGreaterThanOrEqual(3); // read, push and pull-request tokens so far
    expect(minted.filter(isWrite).length).toBeGreaterThanOrEqual(2);
    const secrets = minted.flatMap((t) => forms(t.token));

    // The OpenCode and relay processes' environments.
    const ocPid = (await sandbox.readFile(`${p.control}/opencode.pid`)).toString().trim();
    const ps = await sandbox.exec(["/bin/sh", "-c", `for d in /proc/[0-9]*; do printf '%s\\t' "\${d#/proc/}"; tr '\\0' ' ' < "$d/cmdline" 2>/dev/null; echo; done`]);
    const relayPid = ps.stdout.split("\n").find((l) => l.includes("relay.mjs"))?.split("\t")[0];
    expect(relayPid, ps.stdout).toBeTruthy();
    for (const [pid, marker] of [[ocPid, "HOME="], [relayPid!, "DECKHAND_RUN_ID="]] as const) {
      const env = await sandbox.exec(["/bin/sh", "-c", `tr '\\0' '\\n' < /proc/${pid}/environ`]);
      expect(env.exitCode, env.stderr).toBe(0);
      expect(env.stdout).toContain(marker); // really read that process's environment
      for (const s of secrets) expect(env.stdout).not.toContain(s);
      expect(env.stdout).not.toMatch(/GIT_CONFIG_|extraheader|ghs_/i);
    }
    if (srv.deckhand.provider.isolated) {
      // Own pid namespace: every process in the sandbox.
      const all = await sandbox.exec(["/bin/sh", "-c", "cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n'"]);
      expect(all.stdout).toContain("DECKHAND_RUN_ID=");
      for (const s of secrets) expect(all.stdout).not.toContain(s);
    }

    // Every file the sandbox can write (repo with .git, home, control, tmp), from inside…
    const grep = await sandbox.exec(["grep", "-rlF", "--no-messages", ...secrets.flatMap((s) => ["-e", s]), p.repo, p.home, p.control, "/tmp"]);
    expect(grep.stdout).toBe("");
    expect(grep.exitCode).not.toBe(0);
    // …and from the host side of the local sandbox.
    const hostDir = path.join(process.getuid?.() === 0 ? `${srv.dataDir}-sandboxes` : path.join(srv.dataDir, "sandboxes"), sandbox.id);
    const files = hostFiles(hostDir);
    expect(files.length).toBeGreaterThan(10);
    for (const f of files) {
      let text: string;
      try {
        text = fs.readFileSync(f).toString("latin1");
      } catch (err) {
        if (gone(err)) continue;
        throw err;
      }
      for (const s of secrets) expect(text.includes(s), `${f} holds a token`).toBe(false);
    }
    // git config: the remote URL without credentials, no auth header.
    const cfg = await sandbox.exec(["git", "config", "--list", "--show-origin"], { cwd: p.repo });
    expect(cfg.stdout).toContain(`remote.origin.url=${fake.gitBaseUrl}/acme/widgets.git`);
    expect(cfg.stdout).not.toMatch(/extraheader|authorization|x-access-token|ghs_/i);
    const gitConfig = (await sandbox.readFile(`${p.repo}/.git/config`)).toString();
    for (const s of secrets) expect(gitConfig).not.toContain(s);
    // And every token the sandbox ever saw (the clone's) is dead.
    expect(minted.filter((t) => t.permissions.contents === "read").every((t) => t.revoked)).toBe(true);
  }, 150_000);

  it("the follow-up's idle updates the same pull request (no duplicate) with a fresh push token, reusing the PR token", async () => {
    const before = tokensFor("widgets");
    releaseHeld();
    await expect.poll(async () => (await srv.deckhand.store.get(runId))!.deliveredInputSeq, { timeout: 120_000, interval: 500 }).toBe(2);
    const done = await srv.waitFor(runId, ["idle"], 30_000);
    expect(done.result).toMatchObject({ pushed: true, pullRequestUrl: prUrl, url: prUrl, summary: "I added CHANGELOG.md too." });
    expect(fake.pulls).toHaveLength(1);
    expect(fake.pulls[0]).toMatchObject({ number: 1, updates: 1, draft: true });
    expect(fake.pulls[0]!.body).toContain("I added CHANGELOG.md too.");
    expect(fake.pulls[0]!.body).toContain("- `CHANGELOG.md` (+3 −0)");
    expect(fake.pulls[0]!.body).toContain("- `hello.txt` (+1 −0)");
    expect(await fake.fileAt("acme", "widgets", done.branch, "CHANGELOG.md")).toBe("# Changelog\n\n- hello.txt\n");
    expect(fake.requests.filter((r) => r.method === "POST" && /\/repos\/acme\/widgets\/pulls$/.test(r.path))).toHaveLength(1);
    expect(fake.requests.filter((r) => r.method === "PATCH" && /\/repos\/acme\/widgets\/pulls\/1$/.test(r.path) && r.status === 200)).toHaveLength(1);

    const added = tokensFor("widgets").slice(before.length);
    expect(added.map((t) => t.permissions)).toEqual([{ contents: "write", metadata: "read" }]); // no re-clone, PR token reused
    expect(added[0]!.revoked).toBe(true);
  }, 150_000);

  it("no token reaches the events, the run page, the API or the logs; the PR token is revoked when the run ends", async () => {
    const view = await srv.api("GET", `/api/runs/${runId}`);
    const page = await fetch(view.body.url).then((r) => r.text());
    expect(page).toContain(prUrl);
    const patch = await fetch(`${view.body.url}/diff.patch`).then((r) => r.text());
    const logs = logLines.join("");
    expect(logs).toContain("pull request updated");
    const haystacks = { api: JSON.stringify(view.body), page, patch, logs };
    for (const t of fake.tokens) for (const s of forms(t.token)) for (const [where, text] of Object.entries(haystacks)) expect(text.includes(s), `a token in ${where}`).toBe(false);

    const prTok = tokensFor("widgets").find((t) => t.permissions.pull_requests === "write")!;
    expect(prTok.revoked).toBe(false);
    expect((await srv.api("POST", `/api/runs/${runId}/stop`)).status).toBe(202);
    await expect.poll(() => prTok.revoked, { timeout: 10_000 }).toBe(true);
    expect(fake.tokens.every((t) => t.revoked)).toBe(true);
  }, 60_000);
});
