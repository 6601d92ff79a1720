/**
 * A repository that is a folder on this server reaches a sandbox as a git bundle made here, with a clean
 * environment (no server secret, no user git config), size-capped: the folder itself is never mounted.
 */
import { spawn } from "node:child_process";
import os from "node:os";

export function localRepoBundle(repoPath: string, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const env = { PATH: "/usr/local/bin:/usr/bin:/bin", HOME: os.tmpdir(), GIT_CONFIG_NOSYSTEM: "1", GIT_CONFIG_GLOBAL: "/dev/null", GIT_TERMINAL_PROMPT: "0", LANG: "C" };
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
