// One fake sandbox: a folder on the host, real child processes, a lifetime.
//
// Path mapping (chroot-like, no real isolation):
//   the sandbox's "/" is the host folder `dir` = <root>/<sandboxId>;
//   a sandbox path P is the host path `dir + P` (so /home/user/x -> <dir>/home/user/x);
//   a relative path or `~/...` resolves against the user's home (/home/user, or /root for user "root");
//   a path that is already a host path inside `dir` is kept as is (so what `pwd` prints can be handed back);
//   `..` can't climb above the sandbox root.
// Commands run with the HOST's tools: HOME and the default cwd are mapped, but an absolute path written
// inside a shell command string is NOT rewritten (use $HOME, relative paths or the cwd option).
import { spawn, type ChildProcess } from "node:child_process";
import { EventEmitter } from "node:events";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { posix } from "node:path";

export type SandboxState = "running" | "paused" | "killed";

export interface ProcConfig {
  cmd: string;
  args: string[];
  envs: Record<string, string>;
  cwd?: string;
}

export type ProcEvent =
  | { kind: "data"; stream: "stdout" | "stderr"; data: Buffer }
  | { kind: "end"; exitCode: number; exited: boolean; status: string; error?: string };

export class Proc extends EventEmitter {
  ended = false;
  endEvent?: Extract<ProcEvent, { kind: "end" }>;
  constructor(
    readonly pid: number,
    readonly child: ChildProcess,
    readonly config: ProcConfig,
    readonly tag: string | undefined,
    readonly stdinOpen: boolean,
  ) {
    super();
    this.setMaxListeners(0);
  }
}

const GO_SIGNAL_NAMES: Record<string, string> = {
  SIGKILL: "killed",
  SIGTERM: "terminated",
  SIGINT: "interrupt",
  SIGHUP: "hangup",
  SIGQUIT: "quit",
  SIGPIPE: "broken pipe",
  SIGABRT: "aborted",
  SIGSEGV: "segmentation fault",
  SIGUSR1: "user defined signal 1",
  SIGUSR2: "user defined signal 2",
};

/** Marker put in every process's environment so escaped descendants can still be found via /proc. */
export const MARKER_ENV = "FAKE_E2B_SANDBOX_ID";

export interface SandboxInit {
  id: string;
  templateId: string;
  metadata: Record<string, string>;
  envVars: Record<string, string>;
  dir: string;
  envdAccessToken: string;
  trafficAccessToken: string;
  timeoutSec: number;
  autoPause: boolean;
  autoResume: boolean;
  onExpire: (sb: FakeSandbox) => void;
}

export class FakeSandbox {
  readonly id: string;
  readonly templateId: string;
  readonly metadata: Record<string, string>;
  readonly envVars: Record<string, string>;
  readonly dir: string;
  readonly envdAccessToken: string;
  readonly trafficAccessToken: string;
  readonly autoPause: boolean;
  readonly autoResume: boolean;
  readonly startedAt = Date.now();
  readonly clientId = "fake-e2b-client";
  state: SandboxState = "running";
  endAt = 0;
  readonly procs = new Map<number, Proc>();
  /** open envd responses (process streams); cut when the sandbox dies, as a dead VM drops its connections */
  readonly openResponses = new Set<{ destroy(): void }>();
  private timer?: NodeJS.Timeout;
  private readonly onExpire: (sb: FakeSandbox) => void;

  constructor(init: SandboxInit) {
    this.id = init.id;
    this.templateId = init.templateId;
    this.metadata = init.metadata;
    this.envVars = init.envVars;
    this.dir = init.dir;
    this.envdAccessToken = init.envdAccessToken;
    this.trafficAccessToken = init.trafficAccessToken;
    this.autoPause = init.autoPause;
    this.autoResume = init.autoResume;
    this.onExpire = init.onExpire;
    for (const d of ["home/user", "root", "tmp"]) mkdirSync(posix.join(this.dir, d), { recursive: true });
    // A login shell (`bash -l`) runs /etc/profile, which resets PATH; put back the PATH the command was
    // started with (the sandbox's envVars / the command's envs win over the host's PATH).
    const profile = '[ -n "$FAKE_E2B_PATH" ] && export PATH="$FAKE_E2B_PATH"\n';
    writeFileSync(posix.join(this.dir, "home/user/.bash_profile"), profile);
    writeFileSync(posix.join(this.dir, "root/.bash_profile"), profile);
    this.setTimeoutSec(init.timeoutSec);
  }

  // ------------------------------------------------------------ paths

  homeOf(user?: string): string {
    return user === "root" ? "/root" : "/home/user";
  }

  /** Sandbox path -> host path. */
  toHost(p: string | undefined, user?: string): string {
    let v = p && p.length > 0 ? p : this.homeOf(user);
    if (v === "~" || v.startsWith("~/")) v = this.homeOf(user) + v.slice(1);
    if (v === this.dir || v.startsWith(this.dir + "/")) return posix.normalize(v);
    if (!v.startsWith("/")) v = posix.join(this.homeOf(user), v);
    v = posix.resolve("/", v);
    return v === "/" ? this.dir : this.dir + v;
  }

  /** Host path -> sandbox path. */
  toSandbox(hostPath: string): string {
    if (hostPath === this.dir) return "/";
    if (hostPath.startsWith(this.dir + "/")) return hostPath.slice(this.dir.length);
    return hostPath;
  }

  // ------------------------------------------------------------ lifetime

  setTimeoutSec(sec: number): void {
    this.endAt = Date.now() + sec * 1000;
    this.arm();
  }

  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.state !== "running") return;
    const ms = Math.max(0, this.endAt - Date.now());
    // setTimeout can't wait longer than ~24.8 days; re-arm if needed.
    this.timer = setTimeout(
      () => {
        if (Date.now() + 5 < this.endAt) return this.arm();
        this.onExpire(this);
      },
      Math.min(ms, 2 ** 31 - 1),
    );
    this.timer.unref();
  }

  pause(): void {
    if (this.state !== "running") return;
    this.state = "paused";
    if (this.timer) clearTimeout(this.timer);
    this.signalAll("SIGSTOP");
  }

  resume(timeoutSec: number): void {
    if (this.state !== "paused") return;
    this.state = "running";
    this.signalAll("SIGCONT");
    this.setTimeoutSec(timeoutSec);
  }

  kill(): void {
    if (this.state === "killed") return;
    const wasPaused = this.state === "paused";
    this.state = "killed";
    if (this.timer) clearTimeout(this.timer);
    for (const r of this.openResponses) r.destroy();
    this.openResponses.clear();
    this.signalAll("SIGKILL");
    if (wasPaused) this.signalAll("SIGCONT");
    // Backstop: descendants that left their process group (setsid, nohup setsid, daemons) still carry the
    // marker env var; find them in /proc and kill them too.
    for (const pid of findMarkedPids(this.id)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
  }

  private signalAll(sig: NodeJS.Signals): void {
    for (const p of this.procs.values()) signalGroup(p.pid, sig);
    if (sig === "SIGSTOP" || sig === "SIGCONT") {
      for (const pid of findMarkedPids(this.id)) {
        try {
          process.kill(pid, sig);
        } catch {
          /* gone */
        }
      }
    }
  }

  // ------------------------------------------------------------ processes

  /** Starts a real child process in its own process group (pgid = pid). */
  start(config: ProcConfig, opts: { tag?: string; stdin: boolean; user?: string }): Proc {
    const home = this.toHost(this.homeOf(opts.user));
    const cwd = config.cwd ? this.toHost(config.cwd, opts.user) : home;
    const merged: Record<string, string> = { ...this.envVars, ...config.envs };
    const path = merged.PATH ?? process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin";
    const env: Record<string, string> = {
      PATH: path,
      LANG: process.env.LANG ?? "C.UTF-8",
      SHELL: "/bin/bash",
      TMPDIR: this.toHost("/tmp"),
      E2B_SANDBOX: "true",
      E2B_SANDBOX_ID: this.id,
      E2B_TEMPLATE_ID: this.templateId,
      ...merged,
      HOME: home,
      USER: opts.user ?? "user",
      LOGNAME: opts.user ?? "user",
      PWD: cwd,
      FAKE_E2B_PATH: path,
      [MARKER_ENV]: this.id,
    };
    const child = spawn(config.cmd, config.args, {
      cwd,
      env,
      detached: true, // setsid(): own session and process group, so a group kill stops the whole tree
      stdio: [opts.stdin ? "pipe" : "ignore", "pipe", "pipe"],
    });
    if (child.pid === undefined) {
      // spawn failed synchronously-ish (ENOENT etc.); surface the error to the caller
      throw new Error(`failed to start process: ${config.cmd}`);
    }
    const proc = new Proc(child.pid, child, config, opts.tag, opts.stdin);
    this.procs.set(proc.pid, proc);
    child.stdin?.on("error", () => {});
    child.stdout!.on("data", (data: Buffer) => proc.emit("event", { kind: "data", stream: "stdout", data } satisfies ProcEvent));
    child.stderr!.on("data", (data: Buffer) => proc.emit("event", { kind: "data", stream: "stderr", data } satisfies ProcEvent));
    child.on("error", () => {});
    // 'close' (not 'exit'): like envd, a command is over only when its output pipes are closed, so a
    // foreground command waits for descendants that still hold stdout/stderr.
    child.on("close", (code, signal) => {
      const ev: ProcEvent = signal
        ? { kind: "end", exitCode: -1, exited: false, status: `signal: ${GO_SIGNAL_NAMES[signal] ?? signal}`, error: `signal: ${GO_SIGNAL_NAMES[signal] ?? signal}` }
        : code === 0
          ? { kind: "end", exitCode: 0, exited: true, status: "exit status 0" }
          : { kind: "end", exitCode: code ?? -1, exited: true, status: `exit status ${code}`, error: `exit status ${code}` };
      proc.ended = true;
      proc.endEvent = ev;
      this.procs.delete(proc.pid);
      proc.emit("event", ev);
    });
    return proc;
  }

  findProc(selector: { pid?: number; tag?: string } | undefined): Proc | undefined {
    if (!selector) return undefined;
    if (selector.pid !== undefined && selector.pid !== null) return this.procs.get(Number(selector.pid));
    if (selector.tag) for (const p of this.procs.values()) if (p.tag === selector.tag) return p;
    return undefined;
  }

  toJSON() {
    return { id: this.id, templateId: this.templateId, metadata: this.metadata, state: this.state, dir: this.dir, endAt: this.endAt };
  }
}

export function signalGroup(pgid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, sig);
    return true;
  } catch {
    try {
      process.kill(pgid, sig);
      return true;
    } catch {
      return false;
    }
  }
}

/** PIDs of live processes whose environment carries this sandbox's marker (Linux /proc). */
export function findMarkedPids(sandboxId: string): number[] {
  const needle = Buffer.from(`\0${MARKER_ENV}=${sandboxId}\0`);
  const needleAtStart = Buffer.from(`${MARKER_ENV}=${sandboxId}\0`);
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return out;
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    try {
      const env = readFileSync(`/proc/${pid}/environ`);
      if (env.includes(needle) || env.subarray(0, needleAtStart.length).equals(needleAtStart)) out.push(pid);
    } catch {
      /* gone or not ours */
    }
  }
  return out;
}
