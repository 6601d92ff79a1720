/**
 * The host processes of one local sandbox, found from outside (independently of the provider's own records):
 * every process whose root has the sandbox's workspace at /workspace (OpenCode, the relay, the forwarder,
 * bubblewrap's pid 1), every process carrying the run's id in its environment (the relay and its supervisor), the
 * bwrap and nsenter processes that are their parents on the host, and pasta serving their network namespace.
 * Used by the provider contract (nothing is left while a run is suspended) and bench/idle.ts (memory held).
 */
import fs from "node:fs";

/** Is `p` still running (the same program at that pid)? */
export function stillRunning(p: HostProcess): boolean {
  return proc(p.pid)?.cmdline === p.cmdline;
}

export interface HostProcess {
  pid: number;
  comm: string;
  cmdline: string;
  rssKb: number;
}

const read = (p: string) => {
  try {
    return fs.readFileSync(p, "utf8");
  } catch {
    return null;
  }
};

function proc(pid: number): HostProcess | null {
  const status = read(`/proc/${pid}/status`);
  if (!status || /^State:\s+Z/m.test(status)) return null;
  return {
    pid,
    comm: /^Name:\s+(.*)$/m.exec(status)?.[1] ?? "",
    cmdline: (read(`/proc/${pid}/cmdline`) ?? "").split("\0").join(" ").trim(),
    rssKb: Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0),
  };
}

const ppid = (pid: number) => Number(/^PPid:\s+(\d+)/m.exec(read(`/proc/${pid}/status`) ?? "")?.[1] ?? 0);

/** `sandboxDir`: the sandbox's folder on the host (…/sandboxes/sbx-…); `runId`: its run. */
export function sandboxHostProcesses(sandboxDir: string, runId: string): HostProcess[] {
  const ws = fs.statSync(`${sandboxDir}/workspace`);
  const pids = fs.readdirSync("/proc").filter((n) => /^\d+$/.test(n)).map(Number);
  const members = new Set<number>();
  for (const pid of pids) {
    if (pid === process.pid) continue;
    try {
      const st = fs.statSync(`/proc/${pid}/root/workspace`);
      if (st.dev === ws.dev && st.ino === ws.ino) members.add(pid);
    } catch {
      /* not in a sandbox, or gone */
    }
    if ((read(`/proc/${pid}/environ`) ?? "").split("\0").includes(`DECKHAND_RUN_ID=${runId}`)) members.add(pid);
  }
  const out = new Set(members);
  for (const m of members) {
    // Host-side parents: the outer bwrap and the nsenter of each command entering the sandbox.
    for (let p = ppid(m); p > 1 && p !== process.pid && !out.has(p); p = ppid(p)) {
      const c = proc(p);
      if (!c || !["bwrap", "nsenter"].includes(c.comm)) break;
      out.add(p);
    }
  }
  const nsArgs = [...members].map((m) => `/proc/${m}/ns/net`);
  for (const pid of pids) {
    const c = proc(pid);
    if (c && /^pas(ta|st)/.test(c.comm) && nsArgs.some((a) => c.cmdline.split(" ").includes(a))) out.add(pid);
  }
  return [...out].map(proc).filter((p): p is HostProcess => p !== null).sort((a, b) => a.pid - b.pid);
}
