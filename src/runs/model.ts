/**
 * The run's vocabulary, defined once: its statuses and their named groups, why a run failed (a `FailureCode` and
 * its catalogue of plain reasons and hints, used by every surface), where a run came from (`SourceRef`) and what
 * it produced (`RunResult`). Types and pure lookups only.
 */
import type { RunDigest } from "../events/vocabulary.ts";

// ---- statuses ------------------------------------------------------------------------------------------------------

export const RUN_STATUSES = ["queued", "provisioning", "running", "idle", "closed", "failed", "cancelled"] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/** Over: nothing more happens (a follow-up starts a new run). */
export const TERMINAL_STATUSES: readonly RunStatus[] = ["closed", "failed", "cancelled"];
/** Not done yet: waiting, starting or working on its prompt. */
export const ACTIVE_STATUSES: readonly RunStatus[] = ["queued", "provisioning", "running"];
/** Hold a sandbox (or are about to): the relay and the model token work. */
export const LIVE_STATUSES: readonly RunStatus[] = ["provisioning", "running", "idle"];
/** Use a sandbox slot: counted against MAX_CONCURRENT_RUNS and REPO_MAX_CONCURRENT_RUNS. */
export const WORKING_STATUSES: readonly RunStatus[] = ["provisioning", "running"];
/** Nothing to wait for: a result was delivered (idle) or the run is over. */
export const SETTLED_STATUSES: readonly RunStatus[] = ["idle", "closed", "failed", "cancelled"];

const within = (group: readonly RunStatus[]) => {
  const set = new Set<string>(group);
  return (s: string): boolean => set.has(s);
};
export const isTerminal = within(TERMINAL_STATUSES);
export const isActive = within(ACTIVE_STATUSES);
export const isLive = within(LIVE_STATUSES);
export const isWorking = within(WORKING_STATUSES);
export const isSettled = within(SETTLED_STATUSES);

// ---- failures ------------------------------------------------------------------------------------------------------

/** Why a run failed: machine-readable, stored in `runs.failure_code`, explained by `FAILURES`. */
export type FailureCode = CataloguedFailure | `sandbox_${string}`;

/** The failure codes with an entry in the catalogue (a provider's own `sandbox_<code>` has a generic one). */
export type CataloguedFailure =
  // the watchdog
  | "provision_timeout"
  | "relay_unreachable"
  | "max_duration"
  | "agent_unresponsive"
  | "sandbox_silent"
  // the relay and the sandbox
  | "agent_died"
  | "event_limit"
  | "sandbox_lost"
  | "host_gone"
  // provisioning (plus `sandbox_<provider code>`)
  | "provision_failed"
  | "provision_error"
  | "no_model"
  | "clone_failed"
  | "repo"
  // delivery and the reconciler
  | "delivery_failed"
  | "reconciler_failed"
  // the agent and the model (from its error events)
  | "model_auth"
  | "model_rate_limit"
  | "model_not_found"
  | "model_unavailable"
  | "context_overflow"
  | "over_budget"
  | "aborted"
  | "agent_error";

export interface FailureInfo {
  /** The reason in plain words, when the run recorded none of its own. */
  reason: string;
  /** What to do about it, when there is something to do. */
  hint?: string;
}

/** Plain words and what to do, per failure code (the run's own reason, when it has one, is already plain words). */
export const FAILURES: Readonly<Record<CataloguedFailure, FailureInfo>> = {
  provision_timeout: { reason: "Starting the sandbox took too long" },
  relay_unreachable: { reason: "The sandbox could not reach Deckhand", hint: "Check that PUBLIC_URL is reachable from the sandbox." },
  max_duration: { reason: "The run took longer than its maximum duration", hint: "Split the task into smaller steps." },
  agent_unresponsive: { reason: "The agent stopped answering" },
  sandbox_silent: { reason: "The sandbox stopped responding" },
  agent_died: { reason: "The agent process stopped unexpectedly" },
  event_limit: { reason: "The agent produced more events than a run may store", hint: "Split the task into smaller steps." },
  sandbox_lost: { reason: "The sandbox stopped before the result could be collected" },
  host_gone: { reason: "The Deckhand server that held the run's sandbox stopped", hint: "Start the run again." },
  provision_failed: { reason: "The sandbox could not be started" },
  provision_error: { reason: "The sandbox could not be started" },
  no_model: { reason: "No model is configured", hint: "Set MODEL or LLM_BASE_URL + LLM_MODEL on the Deckhand server." },
  clone_failed: { reason: "The repository could not be cloned" },
  repo: { reason: "The repository is not accessible" },
  delivery_failed: { reason: "The result could not be collected and pushed" },
  reconciler_failed: { reason: "Deckhand could not move the run forward" },
  model_auth: { reason: "The model provider rejected the API key", hint: "Check the model API key configured on the Deckhand server." },
  model_rate_limit: { reason: "The model provider is rate limiting requests", hint: "Try again in a few minutes." },
  model_not_found: { reason: "The model provider does not know this model", hint: "Check MODEL / LLM_MODEL on the Deckhand server." },
  model_unavailable: { reason: "The model provider failed", hint: "Try again in a few minutes." },
  context_overflow: { reason: "The conversation no longer fits the model's context", hint: "Start a new run with a smaller task." },
  over_budget: { reason: "The run reached its budget", hint: "Reply with budget=+5 (or more) to continue." },
  aborted: { reason: "The agent was stopped" },
  agent_error: { reason: "The agent reported an error" },
};

/** The catalogue entry of a stored code (any string: an unknown one has none; never a prototype's property). */
export function failureInfo(code: string | null | undefined): FailureInfo | undefined {
  if (!code) return undefined;
  if (Object.hasOwn(FAILURES, code)) return FAILURES[code as keyof typeof FAILURES];
  if (code.startsWith("sandbox_")) return { reason: "The sandbox could not be started" };
  return undefined;
}

/** A code read from elsewhere (an agent's error event, a provider): itself when it is one of ours, else `fallback`. */
export function asFailureCode(code: string | null | undefined, fallback: FailureCode = "agent_error"): FailureCode {
  if (!code) return fallback;
  return Object.hasOwn(FAILURES, code) || /^sandbox_[a-z_]{1,40}$/.test(code) ? (code as FailureCode) : fallback;
}

/** Why a run failed or stopped, in plain words, plus what to do about it: the same on every surface. */
export function describeFailure(v: { status: string; reason: string | null; failureCode: string | null }): { reason: string; hint: string | null } {
  const info = failureInfo(v.failureCode);
  const reason = v.reason?.trim() || info?.reason || (v.status === "cancelled" ? "The run was stopped" : "The run failed");
  return { reason, hint: info?.hint ?? null };
}

// ---- where a run came from -----------------------------------------------------------------------------------------

/** A Slack run: its thread. */
export interface SlackSourceRef {
  channel: string;
  /** The thread the run talks in (the mention's ts for a new thread). */
  threadTs: string;
  /** The message that started the run (gets the reactions); the thread's when absent. */
  messageTs?: string;
  team?: string;
  user?: string;
  /** For links to the thread: the workspace's domain, or the thread's permalink. */
  teamDomain?: string;
  permalink?: string;
}

/** A Linear run: its workspace, and its agent session or the issue's comment thread. */
export interface LinearSourceRef {
  /** Linear organization id: picks the workspace's token. */
  workspaceId: string;
  /** "agent": an agent session (activities); "classic": an assignment to the bot user (comments). */
  mode: "agent" | "classic";
  agentSessionId?: string;
  /** Empty for an agent session without an issue (the SDK marks `issue` optional): activities only. */
  issueId: string;
  identifier: string;
  issueUrl?: string;
  teamId?: string;
}

/** Any other source (CLI, API, web) may name a link back. */
export interface LinkSourceRef {
  url?: string;
}

/** Where a run came from and where to answer (stored in `runs.source_ref`; read back through each surface's guard). */
export type SourceRef = SlackSourceRef | LinearSourceRef | LinkSourceRef;

// ---- what a run produced -------------------------------------------------------------------------------------------

export interface FileChange {
  path: string;
  additions: number;
  deletions: number;
}

/** The delivered result of a run (stored in `runs.result`). */
export interface RunResult {
  [key: string]: unknown;
  summary: string | null;
  filesChanged: FileChange[];
  additions: number;
  deletions: number;
  branch: string;
  commit: string | null;
  pushed: boolean;
  pushError?: string;
  /** Where to see the change: a pull request, or the run page's diff. */
  url?: string;
  pullRequestUrl?: string;
  usage: RunDigest["usage"];
  error?: { message: string; code: string } | null;
}
