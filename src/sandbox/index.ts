/** Picks the sandbox provider from the configuration, and refuses to pretend a local sandbox is isolated. */
import { createRequire } from "node:module";
import path from "node:path";
import type { Config } from "../config/config.ts";
import type { Logger } from "../log/logger.ts";
import { createE2BProvider } from "./e2b/e2b-provider.ts";
import { cgroupSupport } from "./local/cgroups.ts";
import { findTool, serverUid } from "./local/host.ts";
import { LocalSandboxProvider } from "./local/local-provider.ts";
import { channelSocketPath, localSandboxRoot } from "./local/plan.ts";
import { loopbackListener, probeIsolation } from "./local/probe.ts";
import { type Sandbox, SandboxError, type SandboxProvider, type SandboxSpec } from "./provider.ts";

/** The opencode binary shipped by the opencode-ai package for this platform. */
export function opencodeBinary(config?: Pick<Config, "OPENCODE_BIN">): string {
  if (config?.OPENCODE_BIN) return config.OPENCODE_BIN;
  const require = createRequire(import.meta.url);
  const arch = process.arch === "x64" ? "x64" : process.arch;
  for (const pkg of [`opencode-${process.platform}-${arch}`, `opencode-${process.platform}-${arch}-baseline`]) {
    try {
      return path.join(path.dirname(require.resolve(`${pkg}/package.json`)), "bin", "opencode");
    } catch {
      /* next */
    }
  }
  throw new Error("the opencode binary was not found: run `npm ci` (package opencode-ai) or set OPENCODE_BIN");
}

/** Where the backend's sandbox channel listens (a Unix socket), for this configuration. */
export function sandboxChannelSocket(config: Pick<Config, "DATA_DIR" | "LOCAL_SANDBOX_DIR">): string {
  const root = localSandboxRoot(config.DATA_DIR, serverUid(), config.LOCAL_SANDBOX_DIR);
  return channelSocketPath(root, Buffer.from(root).toString("base64url").slice(-12));
}

export const HOW_TO_FIX =
  "Local sandboxes need bubblewrap with unprivileged user namespaces (Debian/Ubuntu: `apt-get install -y bubblewrap passt`; " +
  "check `sysctl kernel.unprivileged_userns_clone` / `user.max_user_namespaces`). For development only, LOCAL_SANDBOX_ALLOW_UNISOLATED=true runs the agent unisolated.";

/** A provider that refuses every sandbox with the reason isolation failed (the server itself stays up). */
class RefusingProvider implements SandboxProvider {
  readonly name = "local";
  readonly isolated = false;
  readonly sharedNetwork = true;
  constructor(
    private readonly inner: LocalSandboxProvider,
    private readonly why: string,
  ) {}
  async create(_spec: SandboxSpec): Promise<Sandbox> {
    throw new SandboxError(`Runs are refused: the local sandbox is not isolated (${this.why}). ${HOW_TO_FIX}`, "unisolated", false);
  }
  get(id: string) {
    return this.inner.get(id);
  }
  list(labels?: Record<string, string>) {
    return this.inner.list(labels);
  }
  destroy(id: string) {
    return this.inner.destroy(id);
  }
}

export async function createSandboxProvider(config: Config, log: Logger): Promise<SandboxProvider> {
  if (config.SANDBOX_PROVIDER === "e2b") return createE2BProvider(config, log);
  const bwrap = findTool("bwrap");
  const network = config.LOCAL_SANDBOX_NETWORK;
  if (network === "host") log.warn("LOCAL_SANDBOX_NETWORK=host: SANDBOXES SHARE THIS MACHINE'S NETWORK. The agent can reach every local service (database, this server's internal routes). Development only.");
  const cgroups = bwrap ? cgroupSupport() : null;
  const base = {
    dataDir: config.DATA_DIR,
    sandboxDir: config.LOCAL_SANDBOX_DIR,
    opencodeBin: opencodeBinary(config),
    network,
    cgroups,
    sandboxUid: config.LOCAL_SANDBOX_HOST_UID,
    channelSocket: sandboxChannelSocket(config),
    suspendWhenIdle: config.LOCAL_SUSPEND_WHEN_IDLE,
    limits: {
      maxProcesses: config.LOCAL_SANDBOX_MAX_PROCESSES,
      memoryBytes: config.LOCAL_SANDBOX_MEMORY_MB * 1048576,
      cpus: config.LOCAL_SANDBOX_CPUS,
      diskBytes: config.LOCAL_SANDBOX_DISK_MB * 1048576,
    },
    log,
  };
  let problems: string[] = [];
  if (!bwrap) problems = ["bubblewrap (bwrap) is not installed"];
  else {
    const provider = new LocalSandboxProvider({ ...base, isolate: true, bwrap });
    const listener = network === "host" ? null : await loopbackListener();
    const probe = await probeIsolation(provider, listener?.port);
    listener?.close();
    if (probe.ok) {
      if (!cgroups) log.warn({ limits: base.limits }, "no writable cgroup: sandbox processes and file sizes are bounded by rlimits; memory and CPU are not limited");
      log.info({ network, cgroups }, "local sandboxes are isolated (probe passed)");
      return provider;
    }
    problems = probe.problems;
  }
  const why = problems.join("; ");
  if (config.LOCAL_SANDBOX_REQUIRE_ISOLATION) throw new Error(`LOCAL_SANDBOX_REQUIRE_ISOLATION is set but local sandboxes are not isolated: ${why}. ${HOW_TO_FIX}`);
  const folderOnly = new LocalSandboxProvider({ ...base, isolate: false });
  if (config.LOCAL_SANDBOX_ALLOW_UNISOLATED) {
    log.warn({ reason: why }, "RUNS ARE NOT ISOLATED (LOCAL_SANDBOX_ALLOW_UNISOLATED=true): the agent runs with this server's user, files and network.");
    return folderOnly;
  }
  log.error({ reason: why }, `Local sandboxes are not isolated: runs will be refused. ${HOW_TO_FIX}`);
  return new RefusingProvider(folderOnly, why);
}
