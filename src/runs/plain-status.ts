/**
 * Plain words for run statuses and phases, shared by the CLI and the dashboard: what a person reads, never the
 * internal state names ("idle", "provision attempt", "opencode ready").
 */
const STATUS: Record<string, string> = {
  queued: "queued",
  provisioning: "starting",
  running: "working",
  idle: "ready for review",
  closed: "done",
  failed: "failed",
  cancelled: "stopped",
};

const PHASE: Record<string, string> = {
  provision_attempt: "starting a sandbox",
  sandbox_created: "sandbox ready",
  repo_cloned: "repository cloned",
  relay_started: "connecting",
  opencode_started: "starting the agent",
  opencode_ready: "agent ready",
  prompt_delivered: "task handed to the agent",
  // Status changes are recorded as phases too.
  queued: "waiting in the queue",
  provisioning: "starting",
  running: "working",
  idle: "result delivered; follow-ups welcome",
  closed: "closed",
  cancelled: "stopped",
  failed: "failed",
};

/** "working", "ready for review", "stopped", "failed", ...; an unknown status is shown as it is. */
export function plainStatus(status: string): string {
  return Object.hasOwn(STATUS, status) ? STATUS[status]! : status;
}

export function plainPhase(phase: string): string {
  return Object.hasOwn(PHASE, phase) ? PHASE[phase]! : phase.replace(/_/g, " ");
}
