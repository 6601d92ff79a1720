/**
 * Starting a local sandbox's bubblewrap (its pid 1 holds the namespaces) and its network (pasta), for a new
 * sandbox and for one woken after being suspended while idle. See local-provider.ts and plan.ts.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { SandboxError } from "../provider.ts";
import { createCgroups, type SandboxCgroups } from "./cgroups.ts";
import { findProcessByArg, HELPER_ENV, hostLayout, isAlive, runHelper } from "./host.ts";
import { bwrapArgs, type Limits, type NetworkMode } from "./plan.ts";
import { runCapped } from "./safe-files.ts";

export interface LaunchContext {
  bwrap: string;
  uid: number;
  sandboxUid: number;
  network: NetworkMode;
  limits: Limits;
  cgroups?: "v1" | "v2" | null;
  opencodeBin: string;
  forwarderFile: string;
  channelSocket?: string;
  /** The command line that runs argv inside this sandbox (once initPid is known). */
  enter(argv: string[], cwd: string): [string, string[]];
}

export interface LaunchState {
  id: string;
  initPid?: number;
  outerPid?: number;
  pastaPid?: number;
  cgroups?: SandboxCgroups;
}

/** bwrap (as the sandbox's user, in its cgroups), then the network. Fills in `rec` as it goes (a failure's teardown needs it). */
export async function launchSandbox(c: LaunchContext, rec: LaunchState, d: string): Promise<void> {
  if (c.cgroups) rec.cgroups = createCgroups(c.cgroups, rec.id, c.limits);
  const O_PATH = 0o10000000;
  const open = (p: string) => fs.openSync(p, fs.constants.O_RDONLY | O_PATH | fs.constants.O_NOFOLLOW);
  const fdList: number[] = [];
  const take = (p: string) => {
    const fd = open(p);
    fdList.push(fd);
    return 4 + fdList.length - 1; // child fd number (0-2 stdio, 3 info)
  };
  try {
    const fds = {
      workspace: take(path.join(d, "workspace")),
      home: take(path.join(d, "home")),
      control: take(path.join(d, "control")),
      tmp: take(path.join(d, "tmp")),
      opencode: take(fs.realpathSync(c.opencodeBin)),
      forwarder: take(c.forwarderFile),
      channel: c.channelSocket ? take(path.dirname(c.channelSocket)) : undefined,
    };
    const args = bwrapArgs({ host: hostLayout(), fds, network: c.network, infoFd: 3 });
    const { procs } = rec.cgroups ?? { procs: [] };
    const argv = [...(procs.length ? ["/bin/sh", "-c", 'for f in "$@"; do [ "$f" = -- ] && { shift; break; }; echo $$ > "$f" || exit 125; shift; done; exec "$@"', "sh", ...procs, "--"] : []), ...(c.uid === 0 ? ["setpriv", `--reuid=${c.sandboxUid}`, `--regid=${c.sandboxUid}`, "--clear-groups", "--"] : []), c.bwrap, ...args];
    const child = spawn(argv[0]!, argv.slice(1), { detached: true, cwd: "/", env: HELPER_ENV, stdio: ["ignore", "ignore", "pipe", "pipe", ...fdList] });
    let err = "";
    const info = await new Promise<{ "child-pid": number }>((resolve, reject) => {
      let buf = "";
      const timer = setTimeout(() => reject(new SandboxError("bubblewrap did not start within 20 s", "unavailable", true)), 20_000);
      (child.stdio[3] as NodeJS.ReadableStream).on("data", (c: Buffer) => {
        buf += c.toString();
        try {
          resolve(JSON.parse(buf));
          clearTimeout(timer);
        } catch {
          /* more to come */
        }
      });
      child.stderr!.on("data", (c: Buffer) => (err += c.toString().slice(0, 2000)));
      child.on("exit", (code) => reject(new SandboxError(`bubblewrap exited (${code}): ${err.trim()}`, "unavailable")));
      child.on("error", (e) => reject(new SandboxError(`bubblewrap failed to start: ${e.message}`, "unavailable")));
    });
    rec.initPid = info["child-pid"];
    rec.outerPid = child.pid;
    try {
      await waitForMounts(c, rec);
    } catch (e) {
      const hint = /Permission denied/.test(err) ? ` (every folder above DATA_DIR and the opencode binary must be searchable by uid ${c.sandboxUid})` : "";
      throw new SandboxError(`${(e as Error).message}${err.trim() ? `: ${err.trim()}` : ""}${hint}`, "unavailable");
    } finally {
      (child.stdio[3] as NodeJS.ReadableStream & { destroy(): void }).destroy();
      child.stderr!.destroy();
      child.removeAllListeners("exit");
      child.unref();
    }
  } finally {
    for (const fd of fdList) fs.closeSync(fd);
  }
  if (c.network === "isolated") await startNetwork(c, rec);
}

/** bwrap reports its pid before the mounts are in place: wait until the sandbox's folders are there. */
async function waitForMounts(c: LaunchContext, rec: LaunchState): Promise<void> {
  const end = Date.now() + 10_000;
  for (;;) {
    const r = await runCapped(...c.enter(["/bin/true"], "/"), { env: HELPER_ENV }).catch(() => ({ exitCode: 1 }));
    if (r.exitCode === 0) return;
    if (!isAlive(rec.initPid)) throw new SandboxError("bubblewrap exited while setting up the sandbox", "unavailable");
    if (Date.now() > end) throw new SandboxError("the sandbox did not come up within 10 s", "unavailable", true);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** pasta gives the namespace outbound access only: no host port reaches in, no host loopback port reaches out. */
async function startNetwork(c: LaunchContext, rec: LaunchState): Promise<void> {
  const netns = `/proc/${rec.initPid}/ns/net`;
  const argv = [
    ...(c.uid === 0 ? ["setpriv", `--reuid=${c.sandboxUid}`, `--regid=${c.sandboxUid}`, "--clear-groups", "--"] : []),
    "pasta", "--quiet", "--config-net", "--no-map-gw", "-t", "none", "-u", "none", "-U", "none",
    "-T", "none",
    "--userns", `/proc/${rec.initPid}/ns/user`, "--netns", netns,
  ];
  const r = await runHelper(argv);
  if (r.code !== 0) {
    const tun = /tun/i.test(r.stderr) ? `; /dev/net/tun must be readable and writable by the sandbox's uid ${c.sandboxUid} (its usual mode is 0666: \`chmod 0666 /dev/net/tun\`; in Docker, --device /dev/net/tun)` : "";
    throw new SandboxError(`pasta could not give the sandbox a network (${r.stderr || `exit ${r.code}`})${tun}; install passt or set LOCAL_SANDBOX_NETWORK=none`, "unavailable");
  }
  // pasta runs on in the background; find it by the namespace it serves (no pid file in a folder the sandbox's uid could reach).
  rec.pastaPid = findProcessByArg(netns, c.sandboxUid);
}
