/**
 * Provisioning: from a claimed run to a sandbox where OpenCode and the relay run. Everything long-lived starts in
 * the background. The run becomes `running` when the relay reports OpenCode ready (see the receiver).
 */
import net from "node:net";
import type { Config } from "../config/config.ts";
import type { Logger } from "../log/logger.ts";
import type { Run } from "../db/schema.ts";
import { RELAY_PROTOCOL_VERSION, type RelayEnv } from "../relay/protocol.ts";
import { OPENCODE_PORT, opencodeEnv } from "../sandbox/opencode-config.ts";
import { RUN_LABEL, type Sandbox, SandboxError, type SandboxProvider } from "../sandbox/provider.ts";
import { localRepoBundle, remoteRepoBundle } from "./local-repo-bundle.ts";
import type { RepoRegistry } from "./repos.ts";
import { type HeldLease, mustHold } from "./lease.ts";
import type { FailureCode } from "./model.ts";
import type { RunStore } from "./run-store.ts";
import { hashToken, randomToken } from "./tokens.ts";
import { type RelayState, replayAfterSuspension } from "../relay/agent/state.ts";

export class ProvisionError extends Error {
  constructor(
    message: string,
    public readonly code: FailureCode,
    public readonly retryable: boolean,
  ) {
    super(message);
    this.name = "ProvisionError";
  }
}

export interface ProvisionDeps {
  config: Config;
  store: RunStore;
  provider: SandboxProvider;
  repos: RepoRegistry;
  /** The relay program, bundled to one file. */
  relayBundle: () => Promise<Buffer>;
  log: Logger;
  /** This server's host id: recorded as the owner of a local sandbox (only that host can reach it). */
  hostId?: string;
  /** The run's lease: every write is conditioned on it, and its loss stops the work (LeaseLost). */
  lease?: HeldLease;
}

async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

const tail = (s: string, n = 600) => (s.length > n ? `…${s.slice(-n)}` : s).trim();

async function must(sb: Sandbox, argv: string[], what: string, code: FailureCode, opts: Parameters<Sandbox["exec"]>[1] = {}) {
  const r = await sb.exec(argv, opts);
  if (r.exitCode !== 0) throw new ProvisionError(`${what} failed: ${tail(r.stderr || r.stdout) || `exit ${r.exitCode}`}`, code, false);
  return r.stdout.trim();
}

/** Remove anything left by an earlier attempt of this run (a crashed server, a failed try). */
export async function destroyRunSandboxes(provider: SandboxProvider, runId: string, log: Logger): Promise<number> {
  let n = 0;
  for (const s of await provider.list({ [RUN_LABEL]: runId })) {
    if (await provider.destroy(s.id)) {
      n++;
      log.info({ sandboxId: s.id }, "destroyed sandbox");
    }
  }
  return n;
}

/** Where processes inside a sandbox reach the backend's sandbox channel (relay and model gateway). */
export function sandboxBackendUrl(sandbox: Pick<Sandbox, "backendUrl">, config: Pick<Config, "PUBLIC_URL">): string {
  return (sandbox.backendUrl ?? config.PUBLIC_URL).replace(/\/+$/, "");
}

export async function provision(run: Run, deps: ProvisionDeps): Promise<void> {
  const { config, store, provider, repos, log } = deps;
  const lease = deps.lease ?? {};
  /** After each write: stop when it found the lease taken, or the lease's renewal failed meanwhile. */
  const held = (wrote: boolean) => mustHold(run.id, wrote, deps.lease);
  if (!config.model) {
    throw new ProvisionError(
      "No model is configured: set MODEL (with its provider's API key) or LLM_BASE_URL and LLM_MODEL",
      "no_model",
      false,
    );
  }
  await destroyRunSandboxes(provider, run.id, log);

  const relayToken = randomToken();
  // The sandbox's only way to the model: a per-run token for Deckhand's gateway (valid while the run lives).
  const modelToken = randomToken();
  held(await store.recordSandboxStarting(
    run.id,
    {
      relayTokenHash: hashToken(relayToken),
      modelTokenHash: hashToken(modelToken),
      sandboxProvider: provider.name,
      sandboxHost: provider.name === "local" ? (deps.hostId ?? null) : null,
    },
    lease,
  ));

  let access;
  try {
    access = await repos.cloneAccess(run.repo, run.id);
  } catch (e) {
    // A credential source may mark its error retryable (e.g. GitHub answering 5xx while minting a token).
    throw new ProvisionError((e as Error).message, "repo", (e as { retryable?: boolean }).retryable === true);
  }

  let sandbox: Sandbox;
  deps.lease?.signal.throwIfAborted(); // no new sandbox for a run that is no longer ours
  try {
    sandbox = await provider.create({
      runId: run.id,
      labels: { [RUN_LABEL]: run.id },
      timeoutMs: (config.RUN_MAX_DURATION_SECONDS + config.RUN_KEEPALIVE_SECONDS) * 1000,
    });
  } catch (e) {
    const se = e as SandboxError;
    throw new ProvisionError(`Could not start a sandbox: ${se.message}`, `sandbox_${se.code ?? "error"}`, se.retryable ?? true);
  }
  held(await store.phase(run.id, { phase: "sandbox_created", sandboxId: sandbox.id }, lease));
  const p = sandbox.paths;
  log.info({ sandboxId: sandbox.id }, "sandbox created");

  // A local-folder repository is bundled here (clean environment, size-capped) and cloned from the bundle
  // inside: the host folder is never mounted into the sandbox. For a local sandbox a remote repository is cloned
  // here too, so its read credential never enters the sandbox.
  let source = access.url;
  const viaBundle = !!access.localPath || provider.name === "local";
  if (viaBundle) {
    let bundle: Buffer;
    const max = config.LOCAL_REPO_BUNDLE_MAX_MB * 1048576;
    try {
      bundle = access.localPath ? await localRepoBundle(access.localPath, max) : await remoteRepoBundle(access.url, access.env, max);
    } catch (e) {
      await access.release();
      throw new ProvisionError(`Cloning ${run.repo} failed: ${(e as Error).message}`, "clone_failed", false);
    }
    source = `${p.control}/source.bundle`;
    await sandbox.writeFile(source, bundle, 0o644);
  }
  // Clone with credentials passed through the environment of this one command: nothing lands in .git/config.
  const cloneArgs = ["git", "clone", "--quiet", "--no-tags", ...(run.ref ? ["--branch", run.ref] : []), source, p.repo];
  try {
    await must(sandbox, cloneArgs, `Cloning ${run.repo}`, "clone_failed", { env: { ...(viaBundle ? {} : access.env), GIT_TERMINAL_PROMPT: "0" }, cwd: p.home, timeoutMs: 10 * 60_000 });
  } finally {
    // The read credential is only for the clone: revoked before the agent starts (follow-ups don't clone again).
    await access.release();
  }
  if (viaBundle) {
    await sandbox.exec(["rm", "-f", source]);
    // The agent sees the real remote (without credentials; it has none to use it with), not the deleted bundle.
    if (!access.localPath) await must(sandbox, ["git", "remote", "set-url", "origin", access.url], "git remote", "clone_failed", { cwd: p.repo });
  }
  await must(sandbox, ["git", "checkout", "--quiet", "-B", run.branch], "Creating the run branch", "clone_failed", { cwd: p.repo });
  const base = await must(sandbox, ["git", "rev-parse", "HEAD"], "Reading the base commit", "clone_failed", { cwd: p.repo });
  await must(sandbox, ["git", "config", "user.name", "Deckhand"], "git config", "clone_failed", { cwd: p.repo });
  await must(sandbox, ["git", "config", "user.email", "deckhand@users.noreply.local"], "git config", "clone_failed", { cwd: p.repo });
  held(await store.phase(run.id, { phase: "repo_cloned", baseCommit: base }, lease));
  await startAgent(run, sandbox, deps, { relayToken, modelToken }, async (phase) => held(await store.phase(run.id, { phase }, lease)));
  log.info({ sandboxId: sandbox.id }, "opencode and relay started");
}

/**
 * A sandbox suspended while its run was idle (local, LOCAL_SUSPEND_WHEN_IDLE) was woken without its processes:
 * start OpenCode and the relay again with fresh tokens. OpenCode finds its session in its data folder (HOME) and
 * the relay reuses it (state.json) and resumes from its outbox.
 */
export async function restartAgent(run: Run, sandbox: Sandbox, deps: Omit<ProvisionDeps, "repos">): Promise<void> {
  const relayToken = randomToken();
  const modelToken = randomToken();
  mustHold(run.id, await deps.store.recordAgentRestarting(run.id, { relayTokenHash: hashToken(relayToken), modelTokenHash: hashToken(modelToken) }, deps.lease), deps.lease);
  // Pids of the stopped processes mean nothing in the new sandbox (and may be reused there).
  await must(sandbox, ["rm", "-f", `${sandbox.paths.control}/opencode.pid`, `${sandbox.paths.control}/relay/relay.pid`], "Cleaning up", "sandbox_restart_failed");
  // A follow-up the old relay took in the moment it was stopped went to an OpenCode that is gone: the new relay
  // applies every input after the last finished turn again (replayAfterSuspension).
  const stateFile = `${sandbox.paths.control}/relay/state.json`;
  const saved = await sandbox.readFile(stateFile, 64 * 1024).then((b) => JSON.parse(b.toString()) as Partial<RelayState>, () => null);
  const replay = saved && typeof saved === "object" ? replayAfterSuspension(saved, run.deliveredInputSeq) : null;
  if (replay) {
    await sandbox.writeFile(stateFile, `${JSON.stringify(replay)}\n`, 0o644);
    deps.log.info({ sandboxId: sandbox.id, replayAfter: run.deliveredInputSeq }, "inputs after the last finished turn will be applied again");
  }
  await startAgent(run, sandbox, deps, { relayToken, modelToken });
  await sandbox.processesRestarted?.();
  deps.log.info({ sandboxId: sandbox.id }, "opencode and relay started again after the idle suspension");
}

/** Start `opencode serve` and the relay (supervised) in the sandbox, in the background. */
async function startAgent(
  run: Run,
  sandbox: Sandbox,
  deps: Omit<ProvisionDeps, "repos">,
  tokens: { relayToken: string; modelToken: string },
  phase: (name: "opencode_started" | "relay_started") => Promise<unknown> = async () => {},
): Promise<void> {
  const { config, provider } = deps;
  if (!config.model) throw new ProvisionError("No model is configured", "no_model", false);
  const { relayToken, modelToken } = tokens;
  const p = sandbox.paths;
  const port = provider.sharedNetwork ? await freePort() : OPENCODE_PORT;
  const password = randomToken(18);
  const pidFile = `${p.control}/opencode.pid`;
  const ocLog = `${p.control}/opencode.log`;
  await sandbox.startBackground(
    ["/bin/sh", "-c", 'echo $$ > "$DECKHAND_PID_FILE"; exec "$DECKHAND_OPENCODE" serve --port "$DECKHAND_PORT" --hostname 127.0.0.1 --pure'],
    {
      cwd: p.repo,
      logFile: ocLog,
      env: {
        ...opencodeEnv({
          model: config.model,
          gateway: { baseURL: `${sandboxBackendUrl(sandbox, config)}/gateway/v1`, token: modelToken, model: run.model ?? config.model.name },
          home: p.home,
          password,
          policy: { questions: config.AGENT_QUESTIONS, permissions: config.PERMISSIONS },
        }),
        DECKHAND_PID_FILE: pidFile,
        DECKHAND_OPENCODE: p.opencodeBin,
        DECKHAND_PORT: String(port),
      },
    },
  );
  await phase("opencode_started");

  const relayFile = `${p.control}/relay.mjs`;
  await sandbox.writeFile(relayFile, await deps.relayBundle(), 0o644);
  const relayEnv: RelayEnv = {
    DECKHAND_RUN_ID: run.id,
    DECKHAND_BACKEND_URL: sandboxBackendUrl(sandbox, config),
    DECKHAND_RELAY_TOKEN: relayToken,
    OPENCODE_URL: `http://127.0.0.1:${port}`,
    OPENCODE_SERVER_PASSWORD: password,
    OPENCODE_DIRECTORY: p.repo,
    OPENCODE_PID_FILE: pidFile,
    OPENCODE_LOG_FILE: ocLog,
    DECKHAND_STATE_DIR: `${p.control}/relay`,
    DECKHAND_HEARTBEAT_MS: String(config.HEARTBEAT_INTERVAL_SECONDS * 1000),
    // Questions and approval asks wait for a person's answer (sent as commands) instead of being settled at once.
    DECKHAND_ASK_PEOPLE: config.AGENT_QUESTIONS || config.PERMISSIONS.length > 0 ? "1" : "0",
  };
  // A relay that crashes or is killed is started again (it resumes from its on-disk outbox and state); exit 0
  // means the run is over. Bounded, so a relay that cannot start at all does not spin.
  const supervise =
    'n=0; while :; do "$DECKHAND_NODE" "$DECKHAND_RELAY_FILE"; c=$?; [ "$c" -eq 0 ] && exit 0; n=$((n+1)); [ "$n" -ge 20 ] && exit "$c"; echo "relay exited with $c; restarting" >&2; sleep 1; done';
  await sandbox.startBackground(["/bin/sh", "-c", supervise], {
    cwd: p.control,
    logFile: `${p.control}/relay.log`,
    env: { ...relayEnv, DECKHAND_RELAY_PROTOCOL: String(RELAY_PROTOCOL_VERSION), DECKHAND_NODE: p.nodeBin, DECKHAND_RELAY_FILE: relayFile } as unknown as Record<string, string>,
  });
  await phase("relay_started");
}
