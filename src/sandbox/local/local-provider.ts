/**
 * Local sandboxes with bubblewrap, hardened for a hostile agent (docs/sandboxing.md): own user, pid, ipc, uts
 * and network namespaces; an unprivileged uid with no capabilities; an empty environment; the system folders
 * read-only and the run's own folders (owned by the sandbox's user) read-write; limits by cgroup or rlimit;
 * outbound network through pasta with the host's loopback out of reach; the backend reached only through the
 * sandbox channel (a Unix socket, forwarded to 127.0.0.1:CHANNEL_PORT inside).
 *
 * A sandbox is a detached `bwrap … sleep infinity` whose pid 1 holds the namespaces; commands enter them (see
 * plan.ts enterArgv). Sandboxes survive a restart of the server (crash recovery reattaches).
 */
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { type BackgroundOptions, type ExecOptions, type ExecResult, OWNER_LABEL, type Sandbox, SandboxError, type SandboxInfo, type SandboxPaths, type SandboxProvider, type SandboxSpec } from "../provider.ts";
import { cgroupBreaches, removeCgroups, type SandboxCgroups } from "./cgroups.ts";
import { FORWARDER_SOURCE } from "./forwarder.ts";
import { diskUsage, findTool, isAlive, killPid, serverUid, stopGroup } from "./host.ts";
import { launchSandbox } from "./launch.ts";
import { CHANNEL_PORT, enterArgv, INSIDE, insideEnv, type Limits, limitVerdict, localSandboxRoot, type NetworkMode, SAFE_PATH } from "./plan.ts";
import { readRegularFile, runCapped, writeRegularFile } from "./safe-files.ts";

interface Record_ {
  id: string;
  labels: Record<string, string>;
  isolated: boolean;
  initPid?: number;
  outerPid?: number;
  pastaPid?: number;
  cgroups?: SandboxCgroups;
  pgids: number[];
  createdAt: string;
  /** Why the provider stopped it (a limit), for the run's failure reason. */
  endReason?: string;
  /** Its processes were stopped while its run was idle (files kept); cleared once they were started again. */
  suspended?: boolean;
}

export interface LocalProviderOptions {
  dataDir: string;
  /**
   * Where the sandboxes' folders live (see localSandboxRoot: DATA_DIR-sandboxes for a root server).
   */
  sandboxDir?: string;
  opencodeBin: string;
  /** Isolate with bubblewrap (default: when bwrap is installed; false: a folder only, development opt-out). */
  isolate?: boolean;
  bwrap?: string;
  network?: NetworkMode;
  limits?: Limits;
  cgroups?: "v1" | "v2" | null;
  /** Host uid sandboxes run as when the server is root. */
  sandboxUid?: number;
  /** The backend's sandbox-channel socket (bind-mounted into each sandbox). */
  channelSocket?: string;
  /** Stop every process of a sandbox while its run is idle (LOCAL_SUSPEND_WHEN_IDLE; default false here). */
  suspendWhenIdle?: boolean;
  log?: { warn(obj: object, msg: string): void; info?(obj: object, msg: string): void };
}

export const DEFAULT_LIMITS: Limits = { maxProcesses: 512, memoryBytes: 4096 * 1048576, cpus: 2, diskBytes: 4096 * 1048576 };

export class LocalSandboxProvider implements SandboxProvider {
  readonly name = "local";
  readonly sharedNetwork: boolean;
  readonly isolated: boolean;
  private readonly root: string;
  private readonly network: NetworkMode;
  private readonly limits: Limits;
  private readonly uid = serverUid();
  private readonly sandboxUid: number;
  private readonly forwarderFile: string;
  private readonly bwrap: string | null;
  private monitor: NodeJS.Timeout | null = null;
  private readonly watched = new Map<string, Record_>();
  /** Suspending and waking one sandbox, one at a time (per id). */
  private readonly busy = new Map<string, Promise<unknown>>();

  constructor(private readonly opts: LocalProviderOptions) {
    this.root = localSandboxRoot(opts.dataDir, opts.isolate === false ? -1 : this.uid, opts.sandboxDir);
    fs.mkdirSync(this.root, { recursive: true, mode: 0o700 });
    this.bwrap = opts.isolate === false ? null : (opts.bwrap ?? findTool("bwrap"));
    this.isolated = this.bwrap !== null;
    if (opts.isolate === true && !this.isolated) throw new SandboxError("bubblewrap (bwrap) is not installed", "unavailable");
    this.network = opts.network ?? "isolated";
    this.sharedNetwork = !this.isolated || this.network === "host";
    this.limits = opts.limits ?? DEFAULT_LIMITS;
    this.sandboxUid = this.uid === 0 ? (opts.sandboxUid ?? 61000) : this.uid;
    this.forwarderFile = path.join(this.root, "forwarder.cjs");
    // bubblewrap (as the sandbox's uid) resolves the folders it is handed: it must pass through (not list) the root.
    if (this.isolated && this.uid === 0) fs.chmodSync(this.root, 0o711);
    fs.writeFileSync(this.forwarderFile, FORWARDER_SOURCE);
    fs.chmodSync(this.forwarderFile, 0o644); // readable by the sandbox's uid whatever the server's umask (serve sets 077)
    if (opts.channelSocket && this.isolated) {
      // Only the server and the sandboxes' user may reach the channel (root server: group of the sandbox uid).
      const dir = path.dirname(opts.channelSocket);
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      if (this.uid === 0) {
        fs.chownSync(dir, 0, this.sandboxUid);
        fs.chmodSync(dir, 0o710);
      } else fs.chmodSync(dir, 0o700);
    }
  }

  private dir(id: string) {
    if (!/^sbx-[a-f0-9]{12}$/.test(id)) throw new SandboxError(`bad sandbox id ${id}`, "not_found");
    return path.join(this.root, id);
  }

  private paths(rec: Record_): SandboxPaths {
    if (rec.isolated) return { repo: `${INSIDE.workspace}/repo`, home: INSIDE.home, control: INSIDE.control, opencodeBin: INSIDE.opencode, nodeBin: process.execPath };
    const d = this.dir(rec.id);
    return { repo: path.join(d, "workspace", "repo"), home: path.join(d, "home"), control: path.join(d, "control"), opencodeBin: this.opts.opencodeBin, nodeBin: process.execPath };
  }

  async create(spec: SandboxSpec): Promise<Sandbox> {
    const id = `sbx-${crypto.randomBytes(6).toString("hex")}`;
    const d = this.dir(id);
    await fsp.mkdir(d, { mode: 0o700 });
    if (this.isolated && this.uid === 0) await fsp.chmod(d, 0o711);
    for (const sub of ["workspace", "home", "control", "tmp"]) {
      await fsp.mkdir(path.join(d, sub), { mode: 0o700 });
      if (this.isolated) await fsp.chown(path.join(d, sub), this.sandboxUid, this.sandboxUid);
    }
    const rec: Record_ = { id, labels: { ...spec.labels, [OWNER_LABEL]: "1" }, isolated: this.isolated, pgids: [], createdAt: new Date().toISOString() };
    if (this.isolated) {
      try {
        await this.start(rec, d);
      } catch (e) {
        await this.teardown(rec);
        await fsp.rm(d, { recursive: true, force: true });
        throw e;
      }
    }
    await this.save(rec);
    if (rec.isolated) this.watch(rec);
    return this.handle(rec);
  }

  /** bwrap (as the sandbox's user, in its cgroups), then the network (launch.ts), then the channel forwarder. */
  private async start(rec: Record_, d: string): Promise<void> {
    await launchSandbox(
      { ...this.opts, bwrap: this.bwrap!, uid: this.uid, sandboxUid: this.sandboxUid, network: this.network, limits: this.limits, forwarderFile: this.forwarderFile, enter: (argv, cwd) => this.enter(rec, argv, cwd) },
      rec,
      d,
    );
    if (this.opts.channelSocket) {
      const h = this.handle(rec);
      await h.startBackground([process.execPath, INSIDE.forwarder, INSIDE.channel, String(CHANNEL_PORT)], { logFile: `${INSIDE.control}/forwarder.log`, cwd: INSIDE.control });
    }
  }

  /** The command line that runs argv inside the sandbox. */
  private enter(rec: Record_, argv: string[], cwd: string): [string, string[]] {
    const full = enterArgv({ initPid: rec.initPid!, serverUid: this.uid, sandboxUid: this.sandboxUid, network: this.network, cgroupProcs: rec.cgroups?.procs ?? [], limits: this.limits, cwd, argv, nice: !rec.cgroups });
    return [full[0]!, full.slice(1)];
  }

  private watch(rec: Record_): void {
    this.watched.set(rec.id, rec);
    this.monitor ??= setInterval(() => void this.checkLimits(), 2000);
    this.monitor.unref();
  }

  /** A sandbox over its limits is stopped, with the reason kept for the run. */
  private async checkLimits(): Promise<void> {
    for (const rec of this.watched.values()) {
      if (!isAlive(rec.initPid)) {
        this.watched.delete(rec.id);
        continue;
      }
      const b = rec.cgroups ? cgroupBreaches(rec.cgroups) : { pidsMaxHits: 0, oomKills: 0 };
      const verdict = limitVerdict({ ...b, workspaceBytes: await diskUsage(this.dir(rec.id)) }, this.limits);
      if (!verdict) continue;
      this.opts.log?.warn({ sandboxId: rec.id, runId: rec.labels.deckhandRunId, reason: verdict }, "sandbox stopped: over its limits");
      rec.endReason = verdict;
      await this.save(rec).catch(() => {});
      await this.teardown(rec);
      this.watched.delete(rec.id);
    }
  }

  /** Why the provider stopped this sandbox (over a limit), if it did. */
  async endReason(id: string): Promise<string | null> {
    return (await this.load(id))?.endReason ?? null;
  }

  private async teardown(rec: Record_): Promise<void> {
    killPid(rec.initPid);
    killPid(rec.outerPid);
    killPid(rec.pastaPid);
    for (const g of rec.pgids) killPid(-g);
    if (rec.cgroups) await removeCgroups(rec.cgroups);
  }

  private async save(rec: Record_) {
    const file = path.join(this.dir(rec.id), "sandbox.json");
    await fsp.writeFile(`${file}.tmp`, JSON.stringify(rec), { mode: 0o600 });
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
    return rec.isolated ? isAlive(rec.initPid) && !rec.endReason : true;
  }

  async get(id: string): Promise<Sandbox | null> {
    const rec = await this.load(id);
    if (rec?.suspended && !rec.endReason) return this.serial(id, () => this.wake(id));
    if (!rec || !this.isAlive(rec)) return null;
    if (rec.isolated && !this.watched.has(id)) this.watch(rec);
    return this.handle(rec);
  }

  /** One suspend or wake of a sandbox at a time. */
  private serial<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const next = (this.busy.get(id) ?? Promise.resolve()).catch(() => {}).then(fn);
    this.busy.set(id, next);
    return next.finally(() => {
      if (this.busy.get(id) === next) this.busy.delete(id);
    });
  }

  /**
   * Its run went idle: stop every process in it, the last started first (the relay before OpenCode, so the relay
   * never reports OpenCode's exit), then the sandbox itself (bwrap, pasta, cgroups). Its folders stay.
   */
  private async suspend(id: string): Promise<boolean> {
    const rec = await this.load(id);
    if (!rec || rec.suspended || !this.isAlive(rec)) return false;
    const stopMs: number[] = [];
    try {
      for (const g of [...rec.pgids].reverse()) {
        const t = Date.now();
        await stopGroup(g, 5_000);
        stopMs.push(Date.now() - t);
      }
    } finally {
      this.watched.delete(id);
      await this.teardown(rec).catch((e: Error) => this.opts.log?.warn({ sandboxId: id, err: e.message }, "could not remove a suspended sandbox's cgroups"));
      Object.assign(rec, { suspended: true, pgids: [], initPid: undefined, outerPid: undefined, pastaPid: undefined, cgroups: undefined });
      await this.save(rec);
    }
    this.opts.log?.info?.({ sandboxId: id, runId: rec.labels.deckhandRunId, stopMs }, "sandbox suspended while idle: its processes are stopped");
    return true;
  }

  /** Start a suspended sandbox afresh (whatever a wake cut short left is killed first); its processes are the caller's. */
  private async wake(id: string): Promise<Sandbox | null> {
    const rec = await this.load(id);
    if (!rec || rec.endReason) return null;
    if (!rec.suspended) return this.get(id);
    this.watched.delete(id);
    await this.teardown(rec);
    Object.assign(rec, { pgids: [], initPid: undefined, outerPid: undefined, pastaPid: undefined, cgroups: undefined });
    if (rec.isolated) {
      try {
        await this.start(rec, this.dir(id));
      } catch (e) {
        await this.teardown(rec);
        await this.save(rec);
        throw e;
      }
    }
    await this.save(rec);
    if (rec.isolated) this.watch(rec);
    this.opts.log?.info?.({ sandboxId: id, runId: rec.labels.deckhandRunId }, "suspended sandbox started again");
    return this.handle(rec);
  }

  async list(labels: Record<string, string> = {}): Promise<SandboxInfo[]> {
    const out: SandboxInfo[] = [];
    for (const id of await fsp.readdir(this.root).catch(() => [] as string[])) {
      if (!/^sbx-[a-f0-9]{12}$/.test(id)) continue;
      const rec = await this.load(id);
      if (!rec) continue;
      if (Object.entries(labels).every(([k, v]) => Object.hasOwn(rec.labels, k) && rec.labels[k] === v)) out.push({ id, labels: rec.labels, state: rec.suspended ? "paused" : "running" });
    }
    return out;
  }

  async destroy(id: string): Promise<boolean> {
    const rec = await this.load(id);
    if (!rec) return false;
    this.watched.delete(id);
    await this.teardown(rec);
    await fsp.rm(this.dir(id), { recursive: true, force: true, maxRetries: 3 });
    return true;
  }

  async close(): Promise<void> {
    if (this.monitor) clearInterval(this.monitor);
    this.monitor = null;
    this.watched.clear();
  }

  /** Host side of a path inside the sandbox: [the bind-mounted folder, the file under it]. */
  private hostPath(rec: Record_, p: string): [string, string] {
    const d = this.dir(rec.id);
    const norm = path.posix.normalize(p);
    if (!rec.isolated) {
      for (const sub of ["workspace", "home", "control", "tmp"]) {
        const base = path.join(d, sub);
        if (norm === base || norm.startsWith(base + "/")) return [base, norm];
      }
      throw new SandboxError(`${p} is outside the sandbox`, "bad_path");
    }
    const map: [string, string][] = [[INSIDE.workspace, "workspace"], [INSIDE.home, "home"], [INSIDE.control, "control"], [INSIDE.tmp, "tmp"]];
    for (const [inside, sub] of map) {
      if (norm === inside || norm.startsWith(inside + "/")) return [path.join(d, sub), path.join(d, sub, norm.slice(inside.length))];
    }
    throw new SandboxError(`${p} is not in a writable sandbox folder`, "bad_path");
  }

  private handle(rec: Record_): Sandbox {
    const paths = this.paths(rec);
    const command = (argv: string[], cwd: string | undefined): [string, string[], string | undefined] => {
      if (!rec.isolated) return [argv[0]!, argv.slice(1), cwd ?? path.dirname(paths.repo)];
      return [...this.enter(rec, argv, cwd ?? INSIDE.workspace), undefined];
    };
    const ensureAlive = () => {
      if (!this.isAlive(rec)) throw new SandboxError(rec.endReason ?? "The sandbox is gone", "not_found");
    };
    const owner = rec.isolated && this.uid === 0 ? this.sandboxUid : undefined;
    return {
      id: rec.id,
      provider: this.name,
      paths,
      stoppedWhileIdle: rec.suspended === true,
      suspendWhileIdle: async () => (this.opts.suspendWhenIdle ? this.serial(rec.id, () => this.suspend(rec.id)) : false),
      processesRestarted: async () => {
        rec.suspended = false;
        await this.serial(rec.id, async () => {
          const cur = await this.load(rec.id);
          if (cur?.suspended) await this.save({ ...cur, suspended: false });
        });
      },
      backendUrl: rec.isolated && this.opts.channelSocket && this.network !== "host" ? `http://127.0.0.1:${CHANNEL_PORT}` : undefined,
      exec: async (argv: string[], o: ExecOptions = {}): Promise<ExecResult> => {
        ensureAlive();
        const [cmd, args, cwd] = command(o.timeoutMs ? ["timeout", "-s", "KILL", String(Math.ceil(o.timeoutMs / 1000)), ...argv] : argv, o.cwd);
        return await runCapped(cmd, args, { cwd: rec.isolated ? undefined : (o.cwd ?? cwd), env: insideEnv(paths.home, o.env) });
      },
      startBackground: async (argv: string[], o: BackgroundOptions) => {
        ensureAlive();
        const [base, logHost] = this.hostPath(rec, o.logFile);
        await writeRegularFile(base, logHost, "", 0o644, owner);
        const fd = fs.openSync(logHost, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_NOFOLLOW);
        try {
          const [cmd, args, cwd] = command(argv, o.cwd);
          const child = spawn(cmd, args, { cwd: rec.isolated ? undefined : (o.cwd ?? cwd), env: insideEnv(paths.home, o.env), detached: true, stdio: ["ignore", fd, fd] });
          await new Promise<void>((resolve, reject) => {
            child.once("spawn", resolve);
            child.once("error", (e) => reject(new SandboxError(`could not start ${argv[0]}: ${e.message}`, "exec_failed")));
          });
          child.unref();
          if (child.pid) {
            rec.pgids.push(child.pid);
            await this.save(rec);
          }
          return { pid: child.pid ?? 0 };
        } finally {
          fs.closeSync(fd);
        }
      },
      readFile: async (p: string, maxBytes?: number) => readRegularFile(...this.hostPath(rec, p), maxBytes),
      writeFile: async (p: string, data: string | Buffer, mode?: number) => writeRegularFile(...this.hostPath(rec, p), data, mode, owner),
    };
  }
}

export { SAFE_PATH };
