/**
 * Delivering a result when the agent goes idle: commit the change on the run branch inside the sandbox, take
 * the diff and a git bundle out, and push the branch from the backend (no write credential ever enters the
 * sandbox). Result publishers (GitHub pull requests, ...) then turn the branch into a link.
 */
import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import type { Run } from "../db/schema.ts";
import { readDigest } from "../events/digest-store.ts";
import type { Logger } from "../log/logger.ts";
import type { Sandbox } from "../sandbox/provider.ts";
import { isProtectedBranch } from "./branch-guard.ts";
import type { FileChange, RunResult } from "./model.ts";
import type { RepoRegistry } from "./repos.ts";
import type { RunStore } from "./run-store.ts";
import { measuredUsage } from "./run-view.ts";

const pexec = promisify(execFile);

export type { FileChange, RunResult } from "./model.ts";

/** Turns a pushed branch into something to look at (a pull request); optional. */
export interface ResultPublisher {
  handles(run: Run, repoUrl: string): boolean;
  publish(run: Run, result: RunResult, repoUrl: string): Promise<{ url: string } | null>;
}

export const MAX_DIFF_BYTES = 4 * 1024 * 1024;

/** `git diff --numstat` → files changed. Pure. */
export function parseNumstat(out: string): FileChange[] {
  return out
    .split("\n")
    .filter(Boolean)
    .map((l) => {
      const [a, d, ...rest] = l.split("\t");
      return { path: rest.join("\t"), additions: a === "-" ? 0 : Number(a), deletions: d === "-" ? 0 : Number(d) };
    });
}

async function sh(sb: Sandbox, argv: string[], cwd: string) {
  const r = await sb.exec(argv, { cwd, timeoutMs: 120_000 });
  if (r.exitCode !== 0) throw new Error(`${argv.slice(0, 3).join(" ")} failed: ${(r.stderr || r.stdout).trim().slice(-500)}`);
  return r.stdout;
}

async function git(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}) {
  return pexec("git", args, {
    cwd: opts.cwd,
    env: { ...process.env, GIT_TERMINAL_PROMPT: "0", ...opts.env },
    maxBuffer: 64 * 1024 * 1024,
    timeout: 5 * 60_000,
  });
}

export interface DeliverDeps {
  store: RunStore;
  repos: RepoRegistry;
  dataDir: string;
  publishers: ResultPublisher[];
  runPageUrl: (run: Run) => string;
  log: Logger;
  /** Aborts when the run's lease is lost: nothing is pushed or published after that. */
  signal?: AbortSignal;
}

/** Collect the change from the sandbox and push it. Returns the result and the patch. */
export async function collectAndPush(run: Run, sandbox: Sandbox, deps: DeliverDeps): Promise<{ result: RunResult; diff: string }> {
  const repoDir = sandbox.paths.repo;
  const d = await readDigest(deps.store.db, run.id);

  await sh(sandbox, ["git", "add", "-A"], repoDir);
  const status = await sh(sandbox, ["git", "status", "--porcelain"], repoDir);
  if (status.trim()) {
    const msg = `${run.title}\n\n${d.finalText ? `${d.finalText.slice(0, 2000)}\n\n` : ""}Deckhand run ${run.id}`;
    await sh(sandbox, ["git", "commit", "--quiet", "--no-verify", "-m", msg], repoDir);
  }
  const head = (await sh(sandbox, ["git", "rev-parse", "HEAD"], repoDir)).trim();
  const base = run.baseCommit ?? head;
  const files = head === base ? [] : parseNumstat(await sh(sandbox, ["git", "diff", "--numstat", base, head], repoDir));
  let diff = head === base ? "" : await sh(sandbox, ["git", "diff", "--binary", base, head], repoDir);
  if (Buffer.byteLength(diff) > MAX_DIFF_BYTES) diff = `${diff.slice(0, MAX_DIFF_BYTES)}\n… diff truncated (over ${MAX_DIFF_BYTES} bytes)\n`;

  const result: RunResult = {
    summary: d.finalText,
    filesChanged: files,
    additions: files.reduce((a, f) => a + f.additions, 0),
    deletions: files.reduce((a, f) => a + f.deletions, 0),
    branch: run.branch,
    commit: head === base ? null : head,
    pushed: false,
    usage: measuredUsage(run, d.usage),
    error: d.lastError,
  };

  if (files.length > 0) {
    deps.signal?.throwIfAborted();
    try {
      await pushFromBundle(run, sandbox, base, deps);
      result.pushed = true;
    } catch (e) {
      result.pushError = (e as Error).message.replace(/x-access-token:[^@\s]+/g, "x-access-token:***").slice(0, 500);
      deps.log.warn({ err: result.pushError }, "push failed; the diff stays on the run page");
    }
    const repoUrl = deps.repos.url(run.repo);
    for (const p of deps.publishers) {
      deps.signal?.throwIfAborted();
      if (!result.pushed || !p.handles(run, repoUrl)) continue;
      const published = await p.publish(run, result, repoUrl);
      if (published) result.pullRequestUrl = published.url;
    }
  }
  result.url = result.pullRequestUrl ?? `${deps.runPageUrl(run)}#diff`;
  return { result, diff };
}

/** Bundle the run branch in the sandbox, unbundle it into a backend-side cache repo, push to the remote. */
async function pushFromBundle(run: Run, sandbox: Sandbox, base: string, deps: DeliverDeps) {
  const repoDir = sandbox.paths.repo;
  // The branch guard, once more at the last moment: never the remote's default branch, main, master, release/*.
  const remoteDefault = await sh(sandbox, ["git", "symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD"], repoDir).catch(() => "");
  if (isProtectedBranch(run.branch, remoteDefault.trim() || null)) throw new Error(`refusing to push to the protected branch ${run.branch}`);
  const bundleIn = `${sandbox.paths.control}/result.bundle`;
  await sh(sandbox, ["git", "bundle", "create", "--quiet", bundleIn, run.branch], repoDir);
  const bytes = await sandbox.readFile(bundleIn);
  const cache = path.join(deps.dataDir, "git", `${run.repo.replace(/[^\w.-]/g, "_")}.git`);
  await fs.mkdir(cache, { recursive: true });
  await git(["init", "--quiet", "--bare", cache]);
  const bundle = path.join(cache, `run-${run.id}.bundle`);
  await fs.writeFile(bundle, bytes);
  try {
    await git(["fetch", "--quiet", bundle, `+refs/heads/${run.branch}:refs/heads/${run.branch}`], { cwd: cache });
    const access = await deps.repos.pushAccess(run.repo, run.id);
    try {
      await git(["push", "--quiet", access.url, `refs/heads/${run.branch}:refs/heads/${run.branch}`], { cwd: cache, env: access.env });
    } finally {
      await access.release(); // the write credential lives for this one push
    }
  } finally {
    await fs.rm(bundle, { force: true });
  }
  void base;
}
