/**
 * Local sandboxes with bubblewrap: own mount, pid, ipc and uts namespaces; the run's folders bind-mounted
 * read-write; the host's system directories read-only; the network shared. The sandbox is a detached
 * `bwrap … sleep infinity` whose pid 1 holds the namespaces: commands join them with `nsenter`, and killing
 * pid 1 kills every process inside. Sandboxes survive a restart of the server (crash recovery reattaches).
 *
 * Without bubblewrap the sandbox is only a folder and processes run unisolated: the server says so loudly.
 */
import { spawn, spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import {
  type BackgroundOptions,
  type ExecOptions,
  type ExecResult,
  OWNER_LABEL,
  type Sandbox,
  SandboxError,
  type SandboxInfo,
  type SandboxPaths,
  type SandboxProvider,
  type SandboxSpec,
} from "../provider.ts";

interface Record_ {
  id: string;
  labels: Record<string, string>;
  isolated: boolean;
  /** pid 1 of the sandbox's pid namespace (isolated) */
  initPid?: number;
  outerPid?: number;
  /** process groups started unisolated */
  pgids: number[];
  createdAt: string;
}

const INSIDE = { workspace: "/workspace", home: "/home/deckhand", control: "/deckhand", tmp: "/tmp", opencode: "/opt/deckhand/bin/opencode" };
const SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export function findBwrap(): string | null {
  const r = spawnSync("sh", ["-c", "command -v bwrap"], { encoding: "utf8" });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : null;
}

/** Does bubblewrap actually work here (a container may forbid namespaces)? */
export function bwrapWorks(bwrap: string): { ok: boolean; error?: string } {
  const r = spawnSync(bwrap, ["--unshare-pid", "--unshare-ipc", "--unshare-uts", ...systemBinds(), "--proc", "/proc", "--dev", "/dev", "--", "/bin/true"], {
    encoding: "utf8",
    timeout: 10_000,
  });
  return r.status === 0 ? { ok: true } : { ok: false, error: (r.stderr || r.error?.message || `exit ${r.status}`).trim() };
}

function systemBinds(): string[] {
  const args = ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"];
  for (const d of ["/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"]) {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(d);
    } catch {
      continue;
    }
    if (st.isSymbolicLink()) args.push("--symlink", fs.readlinkSync(d), d);
    else if (st.isDirectory()) args.push("--ro-bind", d, d);
  }
  return args;
}

function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/\) Z /.test(stat); // a zombie is dead
  } catch {
    return true;
  }
}

/**
 * bubblewrap reports the child's pid (--info-fd) before it has set up the mounts: a command entering the
 * namespaces right away may find no /bin/sh or no /workspace. Wait until the sandbox's own folders are there
 * (they appear at "/" only after bubblewrap's pivot_root, i.e. once every bind mount is in place).
 */
async function waitForMounts(initPid: number, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = spawn("nsenter", ["--target", String(initPid), "--mount", "--", "/bin/sh", "-c", `test -d ${INSIDE.control} && test -d ${INSIDE.workspace}`], { stdio: "ignore" });
      c.on("error", () => resolve(false));
      c.on("close", (code) => resolve(code === 0));
    });
    if (ok) return;
    if (!alive(initPid)) throw new SandboxError("bubblewrap exited while setting up the sandbox", "unavailable");
    if (Date.now() > end) throw new SandboxError("the sandbox's folders did not appear within 10 s", "unavailable");
    await new Promise((r) => setTimeout(r, 10));
  }
}

export interface LocalProviderOptions {
  dataDir: string;
  opencodeBin: string;
  /** Use bubblewrap (default: when present and working). */
  isolate?: boolean;
  log?: { warn(obj: object, msg: string): void };
}

export class LocalSandboxProvider implements SandboxProvider {
  readonly name = "local";
  readonly sharedNetwork = true;
  readonly isolated: boolean;
  private readonly root: string;
  private readonly bwrap: string | null;

  constructor(private readonly opts: LocalProviderOptions) {
    this.root = path.join(opts.dataDir, "sandboxes");
    fs.mkdirSync(this.root, { recursive: true });
    const bwrap = findBwrap();
    this.bwrap = opts.isolate === false ? null : bwrap;
    this.isolated = this.bwrap !== null;
    if (opts.isolate === true && !this.isolated) throw new SandboxError("bubblewrap (bwrap) is not installed", "unavailable");
  }

  private dir(id: string) {
    if (!/^[a-z0-9-]+$/.test(id)) throw new SandboxError(`bad sandbox id ${id}`, "not_found");
    return path.join(this.root, id);
  }

  private paths(rec: Record_): SandboxPaths {
    if (rec.isolated) {
      return {
        repo: `${INSIDE.workspace}/repo`,
        home: INSIDE.home,
        control: INSIDE.control,
        opencodeBin: INSIDE.opencode,
        nodeBin: process.execPath,
      };
    }
    const d = this.dir(rec.id);
    return {
      repo: path.join(d, "workspace", "repo"),
      home: path.join(d, "home"),
      control: path.join(d, "control"),
      opencodeBin: this.opts.opencodeBin,
      nodeBin: process.execPath,
    };
  }

  async create(spec: SandboxSpec): Promise<Sandbox> {
    const id = `sbx-${crypto.randomBytes(6).toString("hex")}`;
    const d = this.dir(id);
    for (const sub of ["workspace", "home", "control", "tmp"]) await fsp.mkdir(path.join(d, sub), { recursive: true });
    const rec: Record_ = { id, labels: { ...spec.labels, [OWNER_LABEL]: "1" }, isolated: this.isolated, pgids: [], createdAt: new Date().toISOString() };
    if (this.bwrap) {
      const args = [
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--hostname",
        "deckhand-sandbox",
        ...systemBinds(),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--bind",
        path.join(d, "tmp"),
        INSIDE.tmp,
        "--bind",
        path.join(d, "workspace"),
        INSIDE.workspace,
        "--bind",
        path.join(d, "home"),
        INSIDE.home,
        "--bind",
        path.join(d, "control"),
        INSIDE.control,
        "--ro-bind",
        this.opts.opencodeBin,
        INSIDE.opencode,
      ];
      const nodePrefix = path.dirname(path.dirname(process.execPath));
      if (!["/usr", "/usr/local", "/"].includes(nodePrefix) && !nodePrefix.startsWith("/usr/")) args.push("--ro-bind", nodePrefix, nodePrefix);
      for (const p of spec.readOnlyPaths ?? []) if (fs.existsSync(p)) args.push("--ro-bind", p, p);
      args.push("--chdir", INSIDE.workspace, "--info-fd", "3", "--", "/usr/bin/sleep", "infinity");
      const child = spawn(this.bwrap, args, { detached: true, stdio: ["ignore", "ignore", "pipe", "pipe"] });
      const info = await new Promise<{ "child-pid": number }>((resolve, reject) => {
        let buf = "";
        let err = "";
        const fd3 = child.stdio[3] as NodeJS.ReadableStream;
        fd3.on("data", (c: Buffer) => {
          buf += c.toString();
          try {
            resolve(JSON.parse(buf));
          } catch {
            /* wait for more */
          }
        });
        child.stderr!.on("data", (c: Buffer) => (err += c.toString()));
        child.on("exit", (code) => reject(new SandboxError(`bubblewrap exited (${code}): ${err.trim()}`, "unavailable")));
        child.on("error", (e) => reject(new SandboxError(`bubblewrap failed to start: ${e.message}`, "unavailable")));
      });
      (child.stdio[3] as NodeJS.ReadableStream & { destroy(): void }).destroy();
      child.stderr!.destroy();
      child.unref();
      rec.initPid = info["child-pid"];
      rec.outerPid = child.pid;
      try {
        await waitForMounts(rec.initPid);
      } catch (e) {
        for (const pid of [rec.initPid, rec.outerPid]) {
          try {
            if (pid) process.kill(pid, "SIGKILL");
          } catch {
            /* gone */
          }
        }
        await fsp.rm(d, { recursive: true, force: true });
        throw e;
      }
    }
    await this.save(rec);
    return this.handle(rec);
  }

  private async save(rec: Record_) {
    const file = path.join(this.dir(rec.id), "sandbox.json");
    await fsp.writeFile(`${file}.tmp`, JSON.stringify(rec));
    await fsp.rename(`${file}.tmp`, file);
  }

  private async load(id: string): Promise<Record_ | null> {
    try {
      return JSON.parse(await fsp.readFile(path.join(this.dir(id), "sandbox.json"), "utf8"));
    } catch {
      return null;
    }
  }

  private isAlive(rec: Record_): boolean {
    return rec.isolated ? alive(rec.initPid) : true;
  }

  async get(id: string): Promise<Sandbox | null> {
    const rec = await this.load(id);
    if (!rec || !this.isAlive(rec)) return null;
    return this.handle(rec);
  }

  async list(labels: Record<string, string> = {}): Promise<SandboxInfo[]> {
    const out: SandboxInfo[] = [];
    for (const id of await fsp.readdir(this.root).catch(() => [] as string[])) {
      const rec = await this.load(id);
      if (!rec) continue;
      if (Object.entries(labels).every(([k, v]) => rec.labels[k] === v)) out.push({ id, labels: rec.labels, state: "running" });
    }
    return out;
  }

  async destroy(id: string): Promise<boolean> {
    const rec = await this.load(id);
    if (!rec) return false;
    const kill = (pid: number | undefined) => {
      if (!pid) return;
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* gone */
      }
    };
    if (rec.isolated) {
      kill(rec.initPid);
      kill(rec.outerPid);
    } else {
      for (const g of rec.pgids) kill(-g);
    }
    await fsp.rm(this.dir(id), { recursive: true, force: true, maxRetries: 3 });
    return true;
  }

  /** Host path of a path inside the sandbox (for file access). */
  private hostPath(rec: Record_, p: string): string {
    const d = this.dir(rec.id);
    if (!rec.isolated) {
      const resolved = path.resolve(p);
      if (!resolved.startsWith(d + path.sep)) throw new SandboxError(`${p} is outside the sandbox`, "bad_path");
      return resolved;
    }
    const map: [string, string][] = [
      [INSIDE.workspace, "workspace"],
      [INSIDE.home, "home"],
      [INSIDE.control, "control"],
      [INSIDE.tmp, "tmp"],
    ];
    const norm = path.posix.normalize(p);
    for (const [inside, sub] of map) {
      if (norm === inside || norm.startsWith(inside + "/")) return path.join(d, sub, norm.slice(inside.length));
    }
    throw new SandboxError(`${p} is not in a writable sandbox folder`, "bad_path");
  }

  private handle(rec: Record_): Sandbox {
    const paths = this.paths(rec);
    const env = (extra?: Record<string, string>) => ({ PATH: SAFE_PATH, HOME: paths.home, LANG: "C.UTF-8", ...extra });
    const command = (argv: string[], cwd: string | undefined): [string, string[], string | undefined] => {
      if (!rec.isolated) return [argv[0]!, argv.slice(1), cwd ?? paths.repo.replace(/\/repo$/, "")];
      const nsenter = ["--target", String(rec.initPid), "--mount", "--pid", "--ipc", "--uts", "--"];
      return ["nsenter", [...nsenter, "/bin/sh", "-c", 'cd "$0" && exec "$@"', cwd ?? INSIDE.workspace, ...argv], undefined];
    };
    const ensureAlive = () => {
      if (!this.isAlive(rec)) throw new SandboxError("The sandbox is gone", "not_found");
    };
    return {
      id: rec.id,
      provider: this.name,
      paths,
      exec: async (argv: string[], o: ExecOptions = {}): Promise<ExecResult> => {
        ensureAlive();
        const [cmd, args, cwd] = command(o.timeoutMs ? ["timeout", "-s", "KILL", String(Math.ceil(o.timeoutMs / 1000)), ...argv] : argv, o.cwd);
        return await new Promise((resolve, reject) => {
          const child = spawn(cmd, args, { cwd: o.cwd && !rec.isolated ? o.cwd : cwd, env: env(o.env), stdio: ["ignore", "pipe", "pipe"] });
          const out: Buffer[] = [];
          const err: Buffer[] = [];
          child.stdout.on("data", (c) => out.push(c));
          child.stderr.on("data", (c) => err.push(c));
          child.on("error", (e) => reject(new SandboxError(`exec failed: ${e.message}`, "exec_failed")));
          child.on("close", (code, signal) =>
            resolve({ exitCode: code ?? (signal ? 137 : 1), stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }),
          );
        });
      },
      startBackground: async (argv: string[], o: BackgroundOptions) => {
        ensureAlive();
        const logHost = this.hostPath(rec, o.logFile);
        await fsp.mkdir(path.dirname(logHost), { recursive: true });
        const fd = fs.openSync(logHost, "a");
        try {
          const [cmd, args, cwd] = command(argv, o.cwd);
          const child = spawn(cmd, args, { cwd: o.cwd && !rec.isolated ? o.cwd : cwd, env: env(o.env), detached: true, stdio: ["ignore", fd, fd] });
          await new Promise<void>((resolve, reject) => {
            child.once("spawn", resolve);
            child.once("error", (e) => reject(new SandboxError(`could not start ${argv[0]}: ${e.message}`, "exec_failed")));
          });
          child.unref();
          if (!rec.isolated && child.pid) {
            rec.pgids.push(child.pid);
            await this.save(rec);
          }
          return { pid: child.pid ?? 0 };
        } finally {
          fs.closeSync(fd);
        }
      },
      readFile: async (p: string) => fsp.readFile(this.hostPath(rec, p)),
      writeFile: async (p: string, data: string | Buffer, mode?: number) => {
        const h = this.hostPath(rec, p);
        await fsp.mkdir(path.dirname(h), { recursive: true });
        await fsp.writeFile(h, data, { mode });
      },
    };
  }
}
