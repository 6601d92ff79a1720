import path from "node:path";
/**
 * Pure decisions for a hardened local sandbox: the bubblewrap command line, the command that enters a running
 * sandbox, and the limits. No I/O here (host facts come in as arguments), so every rule is testable alone.
 */

export const INSIDE = {
  workspace: "/workspace",
  home: "/home/deckhand",
  control: "/deckhand",
  tmp: "/tmp",
  opencode: "/opt/deckhand/bin/opencode",
  /** The folder holding the backend's sandbox-channel socket, bind-mounted read-only (a restarted server's new socket shows). */
  channelDir: "/run/deckhand",
  channel: "/run/deckhand/backend.sock",
  /** The forwarder program: listens on 127.0.0.1:CHANNEL_PORT inside, forwards to the channel socket. */
  forwarder: "/opt/deckhand/forwarder.cjs",
} as const;

/** Port inside the sandbox's own network namespace where the backend's sandbox channel is reached. */
export const CHANNEL_PORT = 4780;
export const SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export type NetworkMode = "isolated" | "none" | "host";

export interface Limits {
  maxProcesses: number;
  memoryBytes: number;
  cpus: number;
  diskBytes: number;
}

/** Host directories the sandbox sees, passed to bubblewrap as open file descriptors (the sandbox user needs no path to them). */
export interface BindFds {
  workspace: number;
  home: number;
  control: number;
  tmp: number;
  opencode: number;
  forwarder: number;
  channel?: number;
}

export interface HostLayout {
  /** Entries of / that are symlinks (usr-merged systems: /bin -> usr/bin) or directories. */
  rootEntries: { path: string; symlink?: string }[];
  /** The node install prefix when it is outside /usr (e.g. /opt/node): mounted read-only so the relay can run. */
  nodePrefix?: string;
}

/**
 * bubblewrap's arguments. Every namespace is new (user, pid, ipc, uts, and net unless `host`), every capability
 * dropped, a new session (no TIOCSTI into the server's terminal), an empty environment. Only the system
 * directories are visible (read-only) plus the run's own folders. No `--dev`: mounting devpts makes bubblewrap
 * nest a second user namespace, which would keep the server from entering the sandbox; a few device nodes are
 * bound instead.
 */
export function bwrapArgs(o: { host: HostLayout; fds: BindFds; network: NetworkMode; infoFd: number }): string[] {
  const a = ["--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"];
  if (o.network !== "host") a.push("--unshare-net");
  a.push("--cap-drop", "ALL", "--new-session", "--clearenv", "--unsetenv", "PWD", "--setenv", "PATH", SAFE_PATH, "--hostname", "deckhand-sandbox");
  a.push("--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc");
  for (const e of o.host.rootEntries) {
    if (e.symlink !== undefined) a.push("--symlink", e.symlink, e.path);
    else a.push("--ro-bind", e.path, e.path);
  }
  if (o.host.nodePrefix) a.push("--ro-bind", o.host.nodePrefix, o.host.nodePrefix);
  a.push("--proc", "/proc", "--tmpfs", "/dev");
  for (const d of ["null", "zero", "full", "random", "urandom", "tty"]) a.push("--dev-bind-try", `/dev/${d}`, `/dev/${d}`);
  a.push("--symlink", "/proc/self/fd", "/dev/fd", "--tmpfs", "/dev/shm", "--tmpfs", "/run");
  a.push("--bind-fd", String(o.fds.tmp), INSIDE.tmp);
  a.push("--bind-fd", String(o.fds.workspace), INSIDE.workspace);
  a.push("--bind-fd", String(o.fds.home), INSIDE.home);
  a.push("--bind-fd", String(o.fds.control), INSIDE.control);
  a.push("--ro-bind-fd", String(o.fds.opencode), INSIDE.opencode);
  a.push("--ro-bind-fd", String(o.fds.forwarder), INSIDE.forwarder);
  if (o.fds.channel !== undefined) a.push("--ro-bind-fd", String(o.fds.channel), INSIDE.channelDir);
  a.push("--chdir", INSIDE.workspace, "--info-fd", String(o.infoFd), "--", "/usr/bin/sleep", "infinity");
  return a;
}

/** `setpriv` prefix that makes a root server's child the sandbox's unprivileged host user (empty when not root). */
export function asSandboxUser(serverUid: number, sandboxUid: number): string[] {
  return serverUid === 0 ? ["setpriv", `--reuid=${sandboxUid}`, `--regid=${sandboxUid}`, "--clear-groups", "--"] : [];
}

/** Writes its own pid into each cgroup's `cgroup.procs` (root only), then runs the rest. */
export function joinCgroups(procsFiles: string[]): string[] {
  if (procsFiles.length === 0) return [];
  return ["/bin/sh", "-c", 'for f in "$@"; do [ "$f" = -- ] && { shift; break; }; echo $$ > "$f" || exit 125; shift; done; exec "$@"', "sh", ...procsFiles, "--"];
}

/** rlimits applied to every process entering the sandbox (the cgroup, when there is one, is the real bound). */
export function rlimitArgs(l: Limits, withCgroups: boolean): string[] {
  const a = ["prlimit", `--fsize=${l.diskBytes}`, "--core=0"];
  if (!withCgroups) a.push(`--nproc=${l.maxProcesses}`);
  return [...a, "--"];
}

/**
 * The full command that runs `argv` inside a running sandbox: (join cgroups) → (become the sandbox's host user)
 * → enter its user namespace first, then the others → no new privileges, no inheritable capabilities → limits →
 * cd → exec. Entering a user namespace we own gives capabilities in it only until the next exec: the sandbox's
 * uid is not 0 there, so the program runs with an empty capability set.
 */
export function enterArgv(o: {
  initPid: number;
  serverUid: number;
  sandboxUid: number;
  network: NetworkMode;
  cgroupProcs: string[];
  limits: Limits;
  cwd: string;
  argv: string[];
  nice: boolean;
}): string[] {
  const ns = ["--user", "--preserve-credentials", "--mount", "--pid", "--ipc", "--uts", ...(o.network === "host" ? [] : ["--net"])];
  return [
    ...joinCgroups(o.cgroupProcs),
    ...asSandboxUser(o.serverUid, o.sandboxUid),
    "nsenter",
    "--target",
    String(o.initPid),
    ...ns,
    "--",
    "setpriv",
    "--no-new-privs",
    "--inh-caps=-all",
    "--",
    ...rlimitArgs(o.limits, o.cgroupProcs.length > 0),
    ...(o.nice ? ["nice", "-n", "10"] : []),
    "/bin/sh",
    "-c",
    'cd "$0" && exec "$@"',
    o.cwd,
    ...o.argv,
  ];
}

/** The only environment a process inside gets: a fixed base plus what the caller passes for this command. */
export function insideEnv(home: string, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = { PATH: SAFE_PATH, HOME: home, LANG: "C.UTF-8", TMPDIR: INSIDE.tmp };
  for (const [k, v] of Object.entries(extra)) if (typeof v === "string") env[k] = v;
  return env;
}

/** Why a sandbox was stopped by its limits, in words a user understands (null: within limits). */
export function limitVerdict(s: { pidsMaxHits: number; oomKills: number; workspaceBytes: number }, l: Limits): string | null {
  if (s.pidsMaxHits > 0) return `The agent tried to run more than ${l.maxProcesses} processes at once (LOCAL_SANDBOX_MAX_PROCESSES); the sandbox was stopped`;
  if (s.oomKills > 0) return `The agent used more than ${Math.round(l.memoryBytes / 1048576)} MiB of memory (LOCAL_SANDBOX_MEMORY_MB); the sandbox was stopped`;
  if (s.workspaceBytes > l.diskBytes) return `The sandbox's files grew past ${Math.round(l.diskBytes / 1048576)} MiB (LOCAL_SANDBOX_DISK_MB); the sandbox was stopped`;
  return null;
}

/**
 * Where the sandbox channel's Unix socket lives: under DATA_DIR when the path fits in sun_path (108 bytes with
 * the terminating NUL), else a short fallback directory (created 0700) under /tmp.
 */
/**
 * Where local sandboxes' folders live: DATA_DIR/sandboxes, or DATA_DIR-sandboxes beside it for a root server, whose
 * sandboxes run as an unprivileged uid that must pass through this folder (DATA_DIR itself stays 0700).
 */
export function localSandboxRoot(dataDir: string, serverUid: number, sandboxDir?: string): string {
  const abs = path.resolve(dataDir);
  return path.resolve(sandboxDir ?? (serverUid === 0 ? `${abs}-sandboxes` : path.join(abs, "sandboxes")));
}

/** The backend's sandbox-channel socket, under the sandboxes' folder (a short path; sun_path holds 108 bytes). */
export function channelSocketPath(dataDirAbs: string, fallbackId: string): string {
  const p = `${dataDirAbs.replace(/\/+$/, "")}/ch/backend.sock`;
  return Buffer.byteLength(p) <= 100 ? p : `/tmp/deckhand-${fallbackId}/backend.sock`;
}
