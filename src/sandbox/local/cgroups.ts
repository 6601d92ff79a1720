/**
 * Per-sandbox cgroups where this process may create them: cgroup v1 pids/memory/cpu as root (the layout of this
 * kind of host), or a delegated cgroup v2 subtree. Without them, limits fall back to rlimits (see plan.ts).
 */
import fs from "node:fs";
import path from "node:path";
import type { Limits } from "./plan.ts";

const V1 = "/sys/fs/cgroup";

export interface SandboxCgroups {
  /** `cgroup.procs` files a process writes its pid into to join. */
  procs: string[];
  dirs: string[];
  kind: "v1" | "v2";
}

function writable(dir: string): boolean {
  try {
    fs.accessSync(dir, fs.constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** Which cgroup flavour we can use here, checked once at start-up. */
export function cgroupSupport(): "v1" | "v2" | null {
  if (["pids", "memory"].every((c) => fs.existsSync(path.join(V1, c, "cgroup.procs")) && writable(path.join(V1, c)))) return "v1";
  const own = ownV2Dir();
  if (own && writable(own) && /\bpids\b/.test(safeRead(path.join(own, "cgroup.subtree_control")))) return "v2";
  return null;
}

function safeRead(f: string): string {
  try {
    return fs.readFileSync(f, "utf8");
  } catch {
    return "";
  }
}

function ownV2Dir(): string | null {
  const line = safeRead("/proc/self/cgroup").split("\n").find((l) => l.startsWith("0::"));
  if (!line) return null;
  const base = fs.existsSync(path.join(V1, "cgroup.controllers")) ? V1 : path.join(V1, "unified");
  return path.join(base, line.slice(3));
}

export function createCgroups(kind: "v1" | "v2", id: string, l: Limits): SandboxCgroups {
  const dirs: string[] = [];
  const put = (dir: string, file: string, value: string) => {
    try {
      fs.writeFileSync(path.join(dir, file), value);
    } catch {
      /* a controller file this kernel lacks */
    }
  };
  if (kind === "v1") {
    for (const c of ["pids", "memory", "cpu"]) {
      const dir = path.join(V1, c, "deckhand", id);
      if (!fs.existsSync(path.join(V1, c))) continue;
      fs.mkdirSync(dir, { recursive: true });
      dirs.push(dir);
      if (c === "pids") put(dir, "pids.max", String(l.maxProcesses));
      if (c === "memory") {
        put(dir, "memory.limit_in_bytes", String(l.memoryBytes));
        put(dir, "memory.memsw.limit_in_bytes", String(l.memoryBytes));
      }
      if (c === "cpu") {
        put(dir, "cpu.cfs_period_us", "100000");
        put(dir, "cpu.cfs_quota_us", String(Math.max(1000, Math.round(l.cpus * 100000))));
      }
    }
  } else {
    const dir = path.join(ownV2Dir()!, "deckhand", id);
    fs.mkdirSync(dir, { recursive: true });
    dirs.push(dir);
    put(dir, "pids.max", String(l.maxProcesses));
    put(dir, "memory.max", String(l.memoryBytes));
    put(dir, "memory.swap.max", "0");
    put(dir, "cpu.max", `${Math.max(1000, Math.round(l.cpus * 100000))} 100000`);
  }
  return { procs: dirs.map((d) => path.join(d, "cgroup.procs")), dirs, kind };
}

/** How often the sandbox hit its process and memory limits so far. */
export function cgroupBreaches(g: SandboxCgroups): { pidsMaxHits: number; oomKills: number } {
  let pidsMaxHits = 0;
  let oomKills = 0;
  for (const d of g.dirs) {
    pidsMaxHits += Number(/^max (\d+)/m.exec(safeRead(path.join(d, "pids.events")))?.[1] ?? 0);
    oomKills += Number(/^oom_kill (\d+)/m.exec(safeRead(path.join(d, g.kind === "v1" ? "memory.oom_control" : "memory.events")))?.[1] ?? 0);
  }
  return { pidsMaxHits, oomKills };
}

/** Kill everything still in the cgroups and remove them (bounded: 20 tries, 50 ms apart). */
export async function removeCgroups(g: SandboxCgroups): Promise<void> {
  for (const d of g.dirs) {
    for (let i = 0; i < 20; i++) {
      for (const pid of safeRead(path.join(d, "cgroup.procs")).split("\n").filter(Boolean)) {
        try {
          process.kill(Number(pid), "SIGKILL");
        } catch {
          /* gone */
        }
      }
      try {
        fs.rmdirSync(d);
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }
}
