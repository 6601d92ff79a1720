/**
 * One intake for every surface: what a message in a conversation (a Slack thread, a Linear agent session or issue
 * thread, the API) means for its run. Pure: the surface parses its payload, looks up the conversation, calls
 * `decideIntake` and carries the decision out. One list of command words and one continuation policy, so Slack and
 * Linear behave the same.
 */
import { isTerminal } from "../runs/model.ts";

export type IntakeCommand = "stop" | "status" | "help";

/** The command words, recognised only as the whole message (case and trailing punctuation ignored). */
export const COMMAND_WORDS: Readonly<Record<string, IntakeCommand>> = Object.freeze({
  stop: "stop",
  cancel: "stop",
  abort: "stop",
  status: "status",
  help: "help",
});

/** The command a whole message is, if it is one word of COMMAND_WORDS. */
export function commandOf(text: string | null | undefined): IntakeCommand | null {
  const word = (text ?? "").trim().toLowerCase().replace(/[!.?]+$/, "").trim();
  return Object.hasOwn(COMMAND_WORDS, word) ? COMMAND_WORDS[word]! : null;
}

export interface IntakeMessage {
  /** Plain text, without the bot mention and without `repo=`. */
  text: string;
  /** The surface's own stop (Linear's `stop` signal). */
  stopSignal?: boolean;
  /** Addressed to us (a mention, a DM, a delegation, the API): a new run may start. */
  addressed: boolean;
}

export interface IntakeConversation {
  /** The conversation's latest run, if any. */
  run: { status: string } | null;
  /** We asked "which repository?" here and no run started since. */
  askedRepo: boolean;
  /** The run's agent waits on a question of its own (OpenCode's question or permission ask). */
  agentAsking?: boolean;
  /** The repo a new run would use (named in the text, the channel's or team's, DEFAULT_REPO), if known. */
  repo: string | null;
}

export type IntakeDecision =
  | { kind: "start"; repo: string; continueFrom: boolean }
  | { kind: "steer" }
  | { kind: "continue" }
  | { kind: "ask_repo" }
  /** The answer to our "which repository?" (the surface reads the repo from the text). */
  | { kind: "repo_answer" }
  /** The answer to the agent's own question. */
  | { kind: "agent_answer" }
  | { kind: "stop"; running: boolean }
  | { kind: "status" }
  | { kind: "help" }
  | { kind: "ignore"; why: string };

export function decideIntake(m: IntakeMessage, c: IntakeConversation): IntakeDecision {
  const run = c.run;
  // Chatter where we have no conversation (a channel message that is not a mention): not ours, not even commands.
  if (!run && !c.askedRepo && !m.addressed) return { kind: "ignore", why: "not addressed" };
  const command = m.stopSignal ? "stop" : commandOf(m.text);
  if (command === "stop") return { kind: "stop", running: !!run && !isTerminal(run.status) };
  if (command === "status") return { kind: "status" };
  if (command === "help") return { kind: "help" };
  if (run) {
    if (!m.text.trim()) return { kind: "ignore", why: "empty" };
    if (run.status === "running" && c.agentAsking) return { kind: "agent_answer" };
    if (!isTerminal(run.status)) return run.status === "idle" ? { kind: "continue" } : { kind: "steer" };
    // Over: a new run picks the work up (see continuationOf).
    return c.repo ? { kind: "start", repo: c.repo, continueFrom: true } : { kind: "ask_repo" };
  }
  if (c.askedRepo) return { kind: "repo_answer" };
  if (!m.text.trim()) return { kind: "help" };
  return c.repo ? { kind: "start", repo: c.repo, continueFrom: false } : { kind: "ask_repo" };
}

/**
 * The one continuation policy: a new run after a finished one works on the same branch name. It starts from that
 * branch when it was pushed (`onBranch`: the earlier work is there), else from the earlier run's ref.
 */
export function continuationOf(prev: { branch: string; ref: string | null; result: unknown }): { ref: string | null; branch: string; onBranch: boolean } {
  const pushed = (prev.result as { pushed?: boolean } | null)?.pushed === true;
  return { ref: pushed ? prev.branch : prev.ref, branch: prev.branch, onBranch: pushed };
}
