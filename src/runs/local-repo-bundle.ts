/**
 * A repository that is a folder on this server reaches a sandbox as a git bundle made here, with a clean
 * environment (no server secret, no user git config), size-capped: the folder itself is never mounted.
 */
import { spawn } from "node:child_process";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";

const cleanEnv = () => ({ PATH: "/usr/local/bin:/usr/bin:/bin", HOME: os.tmpdir(), GIT_CONFIG_NOSYSTEM: "1", GIT_CONFIG_GLOBAL: "/dev/null", GIT_TERMINAL_PROMPT: "0", LANG: "C" });

/**
 * A remote repository for a local sandbox: cloned (bare) here with the run's read credential in this one command's
 * environment, then bundled like a local folder. The credential never enters the sandbox, and the sandbox needs no
 * route to the git host (its network has no way to the host's loopback, where a self-hosted forge may live).
 */
export async function remoteRepoBundle(url: string, env: Record<string, string>, maxBytes: number, timeoutMs = 10 * 60_000): Promise<Buffer> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "deckhand-clone-"));
  try {
    const bare = path.join(dir, "repo.git");
    await new Promise<void>((resolve, reject) => {
      const c = spawn("git", ["clone", "--quiet", "--bare", "--no-tags", url, bare], { env: { ...cleanEnv(), ...env }, stdio: ["ignore", "ignore", "pipe"], timeout: timeoutMs });
      let err = "";
      c.stderr!.on("data", (d: Buffer) => {
        if (err.length < 2000) err += d.toString();
      });
      c.on("error", reject);
      c.on("close", (code) => (code === 0 ? resolve() : reject(new Error(err.trim() || `git clone exited with ${code}`))));
    });
    return await localRepoBundle(bare, maxBytes);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

export function localRepoBundle(repoPath: string, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const env = cleanEnv();
    const c = spawn("git", ["-C", repoPath, "-c", "safe.directory=*", "bundle", "create", "--quiet", "-", "--all"], { env, stdio: ["ignore", "pipe", "pipe"] });
    const chunks: Buffer[] = [];
    let size = 0;
    let err = "";
    let tooBig = false;
    c.stdout!.on("data", (d: Buffer) => {
      size += d.length;
      if (size > maxBytes) {
        tooBig = true;
        c.kill("SIGKILL");
        return;
      }
      chunks.push(d);
    });
    c.stderr!.on("data", (d: Buffer) => {
      if (err.length < 2000) err += d.toString();
    });
    c.on("error", (e) => reject(e));
    c.on("close", (code) => {
      if (tooBig) return reject(new Error(`the repository's bundle is over ${Math.round(maxBytes / 1048576)} MiB (LOCAL_REPO_BUNDLE_MAX_MB)`));
      if (code !== 0) return reject(new Error(`git bundle of ${repoPath} failed: ${err.trim() || `exit ${code}`}`));
      resolve(Buffer.concat(chunks));
    });
  });
}
