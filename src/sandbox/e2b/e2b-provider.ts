/**
 * E2B sandboxes behind the same interface as the local provider: one Firecracker VM per run, created from the
 * Deckhand template (Node, git, opencode; see template.ts), driven with the real `e2b` SDK.
 *
 * - Long-lived processes start with `commands.run(..., { background: true })` and the stream is dropped at once.
 * - Every sandbox carries `deckhand=1` and the run id in its metadata: `list` finds ours by metadata.
 * - Its lifetime (`timeoutMs`, E2B_SANDBOX_TIMEOUT_SECONDS) is the backstop against leaks; the sandbox reaper
 *   extends it while the run is alive (`extend`).
 * - While a run is idle the sandbox may be paused (E2B_PAUSE_WHEN_IDLE); `get(id)` resumes it.
 * - Paths are under the sandbox user's HOME as the sandbox reports it (`/home/user` on E2B), asked once per sandbox.
 */
import path from "node:path";
import { CommandExitError, type ConnectionOpts, Sandbox as E2BSandbox, SandboxNotFoundError, TimeoutError } from "e2b";
import type { Config } from "../../config/config.ts";
import type { Logger } from "../../log/logger.ts";
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
import { explainE2BError } from "./e2b-errors.ts";
import { TEMPLATE_PATHS } from "./template.ts";

export interface E2BProviderOptions {
  apiKey: string;
  apiUrl?: string;
  sandboxUrl?: string;
  domain?: string;
  /** Template name or id (E2B_TEMPLATE). */
  template: string;
  /** Lifetime of a sandbox; the backstop that kills a leaked one (E2B_SANDBOX_TIMEOUT_SECONDS). */
  lifetimeMs: number;
  /** Pause the sandbox while its run is idle (E2B_PAUSE_WHEN_IDLE). */
  pauseWhenIdle: boolean;
  /** The opencode binary inside the sandbox (default: where the template puts it). */
  opencodeBin?: string;
  /** The node binary inside the sandbox (default: `node` from PATH, as in the template). */
  nodeBin?: string;
  /**
   * Do sandboxes share this host's network (ports must not collide)? Default: true only when the sandbox URL is
   * on loopback (a local E2B-compatible daemon such as the test fake); E2B's VMs each have their own network.
   */
  sharedNetwork?: boolean;
  log?: Logger;
}

/** POSIX shell quoting for one argument. */
export function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

export const shellJoin = (argv: string[]) => argv.map(shellQuote).join(" ");

function isLoopback(url: string | undefined): boolean {
  if (!url) return false;
  try {
    const h = new URL(url).hostname;
    return h === "localhost" || h === "::1" || h === "[::1]" || h.startsWith("127.");
  } catch {
    return false;
  }
}

/** A reused keep-alive connection the server had just closed: safe to try an idempotent call once more. */
function isStaleConnection(e: unknown): boolean {
  const c = (e as { cause?: { code?: string; message?: string } })?.cause;
  return e instanceof TypeError && /ECONNRESET|EPIPE|UND_ERR_SOCKET|other side closed|socket hang up/.test(`${c?.code ?? ""} ${c?.message ?? ""}`);
}

/** Run an idempotent control-plane call, once more after a stale connection. */
async function idempotent<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (!isStaleConnection(e)) throw e;
    return await fn();
  }
}

export class E2BSandboxProvider implements SandboxProvider {
  readonly name = "e2b";
  readonly isolated = true;
  readonly sharedNetwork: boolean;
  private readonly conn: ConnectionOpts;
  /** A sandbox daemon on loopback (the test fake): its sandboxes see this host's files and network. */
  private readonly sharesHost: boolean;
  /** Sandbox id → HOME inside it (asked once per sandbox and process). */
  private readonly homes = new Map<string, string>();

  constructor(private readonly opts: E2BProviderOptions) {
    this.conn = {
      apiKey: opts.apiKey,
      ...(opts.apiUrl ? { apiUrl: opts.apiUrl } : {}),
      ...(opts.sandboxUrl ? { sandboxUrl: opts.sandboxUrl } : {}),
      ...(opts.domain ? { domain: opts.domain } : {}),
    } as ConnectionOpts;
    this.sharesHost = isLoopback(opts.sandboxUrl);
    this.sharedNetwork = opts.sharedNetwork ?? this.sharesHost;
  }

  private fail(e: unknown, doing: string): SandboxError {
    return explainE2BError(e, { doing, template: this.opts.template, apiUrl: this.opts.apiUrl ?? "https://api.e2b.app" });
  }

  async create(spec: SandboxSpec): Promise<Sandbox> {
    const lifetime = Math.min(spec.timeoutMs ?? this.opts.lifetimeMs, this.opts.lifetimeMs);
    let sbx: E2BSandbox;
    try {
      sbx = await E2BSandbox.create(this.opts.template, {
        ...this.conn,
        timeoutMs: lifetime,
        metadata: { ...spec.labels, [OWNER_LABEL]: "1" },
      });
    } catch (e) {
      throw this.fail(e, "creating a sandbox");
    }
    try {
      return await this.handle(sbx);
    } catch (e) {
      await E2BSandbox.kill(sbx.sandboxId, this.conn).catch(() => false);
      throw e;
    }
  }

  async get(id: string): Promise<Sandbox | null> {
    let sbx: E2BSandbox;
    try {
      // Connecting resumes a paused sandbox and extends (never shortens) a running one's lifetime.
      sbx = await idempotent(() => E2BSandbox.connect(id, { ...this.conn, timeoutMs: this.opts.lifetimeMs }));
    } catch (e) {
      if (e instanceof SandboxNotFoundError) return null;
      throw this.fail(e, "reconnecting to a sandbox");
    }
    try {
      return await this.handle(sbx);
    } catch (e) {
      if (e instanceof SandboxError && e.code === "not_found") return null;
      throw e;
    }
  }

  async list(labels: Record<string, string> = {}): Promise<SandboxInfo[]> {
    const out: SandboxInfo[] = [];
    try {
      // Running and paused ones alike (no state filter): a reaper must see both.
      const pager = E2BSandbox.list({ ...this.conn, limit: 100, query: { metadata: { ...labels, [OWNER_LABEL]: "1" } } });
      while (pager.hasNext) {
        for (const s of await idempotent(() => pager.nextItems())) {
          out.push({ id: s.sandboxId, labels: { ...(s.metadata ?? {}) }, state: s.state === "paused" ? "paused" : "running" });
        }
      }
    } catch (e) {
      throw this.fail(e, "listing sandboxes");
    }
    return out;
  }

  async destroy(id: string): Promise<boolean> {
    this.homes.delete(id);
    try {
      return await idempotent(() => E2BSandbox.kill(id, this.conn));
    } catch (e) {
      if (e instanceof SandboxNotFoundError) return false;
      throw this.fail(e, "killing a sandbox");
    }
  }

  async extend(id: string, ms: number): Promise<void> {
    try {
      await idempotent(() => E2BSandbox.setTimeout(id, Math.min(ms, 86_400_000), this.conn));
    } catch (e) {
      throw this.fail(e, "extending a sandbox's lifetime");
    }
  }

  private async home(sbx: E2BSandbox): Promise<string> {
    const known = this.homes.get(sbx.sandboxId);
    if (known) return known;
    let home: string;
    try {
      home = (await sbx.commands.run('printf %s "$HOME"', { timeoutMs: 60_000 })).stdout.trim();
    } catch (e) {
      throw this.fail(e, "starting a sandbox");
    }
    if (!home.startsWith("/")) throw new SandboxError(`The E2B sandbox reported no home folder (got "${home}")`, "unavailable", true);
    this.homes.set(sbx.sandboxId, home);
    return home;
  }

  private async handle(sbx: E2BSandbox): Promise<Sandbox> {
    const home = await this.home(sbx);
    const paths: SandboxPaths = {
      repo: `${home}/repo`,
      home,
      control: `${home}/.deckhand`,
      opencodeBin: this.opts.opencodeBin ?? TEMPLATE_PATHS.opencode,
      nodeBin: this.opts.nodeBin ?? TEMPLATE_PATHS.node,
    };
    const id = sbx.sandboxId;
    const fail = (e: unknown, doing: string) => this.fail(e, doing);
    const opts = this.opts;
    const conn = this.conn;
    const self: Sandbox = {
      id,
      provider: this.name,
      paths,
      async exec(argv: string[], o: ExecOptions = {}): Promise<ExecResult> {
        const started = Date.now();
        try {
          const r = await sbx.commands.run(shellJoin(argv), { cwd: o.cwd, envs: o.env, timeoutMs: o.timeoutMs ?? 0 });
          return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr };
        } catch (e) {
          if (e instanceof CommandExitError) return { exitCode: e.exitCode, stdout: e.stdout, stderr: e.stderr };
          if (e instanceof TimeoutError && o.timeoutMs && Date.now() - started >= o.timeoutMs && !/end of life/.test(e.message)) {
            return { exitCode: 124, stdout: "", stderr: `${argv[0]} timed out after ${Math.round(o.timeoutMs / 1000)} s` };
          }
          throw fail(e, `running ${argv[0]}`);
        }
      },
      async startBackground(argv: string[], o: BackgroundOptions): Promise<{ pid: number }> {
        // `exec` keeps the pid: the handle's pid is the program's own.
        const script = `mkdir -p ${shellQuote(path.posix.dirname(o.logFile))} && exec ${shellJoin(argv)} >> ${shellQuote(o.logFile)} 2>&1 < /dev/null`;
        try {
          const h = await sbx.commands.run(script, { background: true, cwd: o.cwd, envs: o.env, timeoutMs: 0 });
          await h.disconnect().catch(() => {});
          return { pid: h.pid };
        } catch (e) {
          throw fail(e, `starting ${path.posix.basename(argv[0] ?? "a process")}`);
        }
      },
      async readFile(p: string, maxBytes = 256 * 1024 * 1024): Promise<Buffer> {
        // What the agent wrote: a regular file (not a link), within the cap, checked before any byte is fetched.
        const st = await self.exec(["stat", "-c", "%F|%s", "--", p]);
        const [kind, size] = st.stdout.trim().split("|");
        if (st.exitCode !== 0) throw new SandboxError(`${p} does not exist`, "not_found");
        if (kind !== "regular file" && kind !== "regular empty file") throw new SandboxError(`${p} is not a regular file (${kind}): refused`, "bad_path");
        if (Number(size) > maxBytes) throw new SandboxError(`${p} is ${size} bytes, over the ${maxBytes}-byte limit`, "too_large");
        try {
          return Buffer.from(await sbx.files.read(p, { format: "bytes" }));
        } catch (e) {
          throw fail(e, `reading ${p}`);
        }
      },
      async writeFile(p: string, data: string | Buffer, mode?: number): Promise<void> {
        try {
          await sbx.files.write(p, typeof data === "string" ? data : new Blob([new Uint8Array(data)]));
        } catch (e) {
          throw fail(e, `writing ${p}`);
        }
        // Files are written 0644; only a different mode costs another call.
        if (mode !== undefined && (mode & 0o7777) !== 0o644) {
          const r = await self.exec(["chmod", (mode & 0o7777).toString(8), p]);
          if (r.exitCode !== 0) throw new SandboxError(`chmod ${p} failed: ${r.stderr.trim()}`, "exec_failed");
        }
      },
      extend: (ms: number) => this.extend(id, ms),
      async suspendWhileIdle(): Promise<boolean> {
        if (!opts.pauseWhenIdle) return false;
        try {
          // keepMemory: OpenCode and the relay carry on where they were when the sandbox is resumed.
          return await E2BSandbox.pause(id, { ...conn, keepMemory: true });
        } catch (e) {
          throw fail(e, "pausing an idle sandbox");
        }
      },
    };
    return self;
  }
}

export function createE2BProvider(config: Config, log: Logger): SandboxProvider {
  if (!config.E2B_API_KEY) throw new Error("SANDBOX_PROVIDER=e2b needs E2B_API_KEY");
  const provider = new E2BSandboxProvider({
    apiKey: config.E2B_API_KEY,
    apiUrl: config.E2B_API_URL,
    sandboxUrl: config.E2B_SANDBOX_URL,
    domain: config.E2B_DOMAIN,
    template: config.E2B_TEMPLATE,
    lifetimeMs: config.E2B_SANDBOX_TIMEOUT_SECONDS * 1000,
    pauseWhenIdle: config.E2B_PAUSE_WHEN_IDLE,
    opencodeBin: config.OPENCODE_BIN,
    log,
  });
  if (isLoopback(config.PUBLIC_URL) && !provider.sharedNetwork) {
    log.warn(
      { publicUrl: config.PUBLIC_URL },
      "PUBLIC_URL is a loopback address, which E2B sandboxes cannot reach: set PUBLIC_URL to an https address of this server that is reachable from the internet",
    );
  }
  return provider;
}
