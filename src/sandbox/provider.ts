/**
 * One interface for every kind of sandbox (local bubblewrap, E2B, ...). The run orchestration speaks only this.
 * Rule: long-lived processes start with `startBackground`, never with `exec` (a foreground exec waits for every
 * descendant of the command).
 */
export interface SandboxPaths {
  /** Where the repository is cloned; OpenCode's project directory. */
  repo: string;
  /** HOME inside the sandbox. */
  home: string;
  /** Deckhand's own files inside the sandbox: relay program, outbox, logs, pid files. */
  control: string;
  /** The opencode binary inside the sandbox. */
  opencodeBin: string;
  /** The node binary inside the sandbox (runs the relay). */
  nodeBin: string;
}

export interface SandboxSpec {
  runId: string;
  /** Labels to find our sandboxes again (the run id is always one). */
  labels: Record<string, string>;
  /** Lifetime backstop, for providers that have one (E2B). */
  timeoutMs?: number;
}

export interface ExecOptions {
  cwd?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface BackgroundOptions extends ExecOptions {
  /** File inside the sandbox that receives stdout and stderr. */
  logFile: string;
}

export interface Sandbox {
  readonly id: string;
  readonly provider: string;
  readonly paths: SandboxPaths;
  /**
   * The base URL at which processes inside this sandbox reach the backend's sandbox channel (relay routes and the
   * model gateway only). Unset: the server's PUBLIC_URL (E2B, which reaches the backend over the internet).
   */
  readonly backendUrl?: string;
  /** Run a command to completion: argv, no shell. */
  exec(argv: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Start a long-lived process and return at once. */
  startBackground(argv: string[], opts: BackgroundOptions): Promise<{ pid: number }>;
  /**
   * Read a file the agent may have written: a regular file only (never through a symlink), at most `maxBytes`
   * (default: the provider's cap); larger ones throw SandboxError "too_large".
   */
  readFile(path: string, maxBytes?: number): Promise<Buffer>;
  writeFile(path: string, data: string | Buffer, mode?: number): Promise<void>;
  /** Ask the provider to keep the sandbox alive this much longer (no-op where lifetimes don't exist). */
  extend?(ms: number): Promise<void>;
  /**
   * The run went idle and keeps its sandbox for follow-ups: the provider may pause it to save cost (E2B with
   * E2B_PAUSE_WHEN_IDLE keeps its memory; local with LOCAL_SUSPEND_WHEN_IDLE stops every process in it, last
   * started first, and keeps its files). `provider.get(id)` wakes it up again. True when it was paused.
   */
  suspendWhileIdle?(): Promise<boolean>;
  /**
   * Set on a handle from `provider.get(id)` when the sandbox was woken without its processes (a local sandbox
   * suspended while idle): the caller starts OpenCode and the relay again (`restartAgent`), then calls
   * `processesRestarted()`. Until then every `get()` starts the sandbox afresh, so a restart cut short is redone.
   */
  readonly stoppedWhileIdle?: boolean;
  processesRestarted?(): Promise<void>;
}

export interface SandboxInfo {
  id: string;
  labels: Record<string, string>;
  state: "running" | "paused";
}

export interface SandboxProvider {
  readonly name: string;
  /** False where the sandbox is only a folder (no bubblewrap): shown loudly at start-up. */
  readonly isolated: boolean;
  /** True when sandboxes share the host's network (ports must not collide between sandboxes). */
  readonly sharedNetwork: boolean;
  create(spec: SandboxSpec): Promise<Sandbox>;
  /** Reattach to a sandbox by id (another server process may have created it); null when it is gone. */
  get(id: string): Promise<Sandbox | null>;
  /** Our sandboxes, optionally filtered by labels. */
  list(labels?: Record<string, string>): Promise<SandboxInfo[]>;
  /** Kill it and everything in it; true when something was killed. Idempotent. */
  destroy(id: string): Promise<boolean>;
  /** Extend a sandbox's lifetime by id, without waking it (providers with lifetimes: E2B). */
  extend?(id: string, ms: number): Promise<void>;
  close?(): Promise<void>;
  /** Why the provider itself stopped a sandbox (e.g. over its process or memory limit); null when it did not. */
  endReason?(id: string): Promise<string | null>;
}

export class SandboxError extends Error {
  constructor(
    message: string,
    /** Machine-readable class: "unavailable", "quota", "auth", "not_found", "exec_failed", ... */
    public readonly code: string,
    public readonly retryable = false,
  ) {
    super(message);
    this.name = "SandboxError";
  }
}

export const RUN_LABEL = "deckhandRunId";
export const OWNER_LABEL = "deckhand";
