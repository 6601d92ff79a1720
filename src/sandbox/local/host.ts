/** Facts about this host the local sandbox needs: tools, the layout of /, the uid sandboxes run as. */
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import type { HostLayout } from "./plan.ts";

export function findTool(name: string): string | null {
  for (const dir of ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]) {
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return null;
}

export function hostLayout(): HostLayout {
  const rootEntries: HostLayout["rootEntries"] = [];
  for (const d of ["/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"]) {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(d);
    } catch {
      continue;
    }
    if (st.isSymbolicLink()) rootEntries.push({ path: d, symlink: fs.readlinkSync(d) });
    else if (st.isDirectory()) rootEntries.push({ path: d });
  }
  const prefix = path.dirname(path.dirname(fs.realpathSync(process.execPath)));
  const nodePrefix = prefix === "/" || prefix === "/usr" || prefix.startsWith("/usr/") ? undefined : prefix;
  return { rootEntries, nodePrefix };
}

/** The environment of the helper programs the server starts (bwrap, pasta, nsenter): nothing of the server's own. */
export const HELPER_ENV = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" };

export function serverUid(): number {
  return process.getuid?.() ?? 0;
}

export function isAlive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  try {
    return !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

export function killPid(pid: number | undefined): void {
  if (!pid) return;
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    /* gone */
  }
}

/** Run a helper to completion (clean env), resolving with its exit code and stderr. */
export function runHelper(argv: string[], timeoutMs = 15_000): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(argv[0]!, argv.slice(1), { env: HELPER_ENV, stdio: ["ignore", "ignore", "pipe"], timeout: timeoutMs });
    let stderr = "";
    c.stderr!.on("data", (d: Buffer) => {
      if (stderr.length < 4000) stderr += d.toString();
    });
    c.on("error", (e) => resolve({ code: 127, stderr: e.message }));
    c.on("close", (code) => resolve({ code: code ?? 1, stderr: stderr.trim() }));
  });
}

export function bwrapVersionOk(bwrap: string): boolean {
  return spawnSync(bwrap, ["--version"], { env: HELPER_ENV, encoding: "utf8" }).status === 0;
}

/** Disk use of a folder in bytes (du, bounded in time). */
export function diskUsage(dir: string): Promise<number> {
  return new Promise((resolve) => {
    const c = spawn("du", ["-sxb", dir], { env: HELPER_ENV, stdio: ["ignore", "pipe", "ignore"], timeout: 30_000 });
    let out = "";
    c.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    c.on("error", () => resolve(0));
    c.on("close", () => resolve(Number(/^(\d+)/.exec(out)?.[1] ?? 0)));
  });
}

/** The pid of a process of `uid` whose command line has `arg` (a helper that daemonised itself), if any. */
export function findProcessByArg(arg: string, uid: number): number | undefined {
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (fs.statSync(`/proc/${name}`).uid !== uid) continue;
      if (fs.readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0").includes(arg)) return Number(name);
    } catch {
      /* gone */
    }
  }
  return undefined;
}

/** Is a live (not zombie) process left in process group `pgid`? Exited ones wait for the sandbox's init to reap them. */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, "utf8");
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(pgrp) === pgid && state !== "Z") return true;
    } catch {
      /* gone */
    }
  }
  return false;
}

/** SIGTERM a process group, wait up to `graceMs` for it to end, then SIGKILL what is left. */
export async function stopGroup(pgid: number, graceMs: number): Promise<void> {
  try {
    process.kill(-pgid, "SIGTERM");
  } catch {
    return; // gone already
  }
  const end = Date.now() + graceMs;
  while (groupAlive(pgid) && Date.now() < end) await new Promise((r) => setTimeout(r, 25));
  killPid(-pgid);
}
