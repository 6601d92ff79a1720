/** The shared intake: one decision for Slack, Linear and the API, one command list, one continuation policy. */
import { describe, expect, it } from "vitest";
import { commandOf, continuationOf, decideIntake } from "../../src/intake/decide.ts";
import { parseMessage } from "../../src/integrations/slack/parse.ts";

const msg = (text: string, o: { stopSignal?: boolean; addressed?: boolean } = {}) => ({ text, addressed: o.addressed ?? true, ...(o.stopSignal ? { stopSignal: true } : {}) });
const conv = (status: string | null, o: { askedRepo?: boolean; agentAsking?: boolean; repo?: string | null } = {}) => ({
  run: status ? { status } : null,
  askedRepo: o.askedRepo ?? false,
  agentAsking: o.agentAsking ?? false,
  repo: o.repo === undefined ? "api" : o.repo,
});

describe("decideIntake", () => {
  it("a reply steers a working run, continues an idle one, and starts a continuation after a finished one", () => {
    for (const s of ["queued", "provisioning", "running"]) expect(decideIntake(msg("also add tests"), conv(s))).toEqual({ kind: "steer" });
    expect(decideIntake(msg("also add tests"), conv("idle"))).toEqual({ kind: "continue" });
    for (const s of ["closed", "failed", "cancelled"]) expect(decideIntake(msg("again"), conv(s))).toEqual({ kind: "start", repo: "api", continueFrom: true });
    expect(decideIntake(msg("   "), conv("running"))).toEqual({ kind: "ignore", why: "empty" });
  });

  it("stop words and the stop signal stop (saying whether anything was running); status and help answer", () => {
    for (const w of ["stop", "Cancel!", "abort.", " STOP "]) expect(decideIntake(msg(w), conv("running"))).toEqual({ kind: "stop", running: true });
    expect(decideIntake(msg("", { stopSignal: true }), conv("idle"))).toEqual({ kind: "stop", running: true });
    expect(decideIntake(msg("stop"), conv("closed"))).toEqual({ kind: "stop", running: false });
    expect(decideIntake(msg("stop"), conv(null))).toEqual({ kind: "stop", running: false });
    expect(decideIntake(msg("status?"), conv("running"))).toEqual({ kind: "status" });
    expect(decideIntake(msg("help"), conv(null))).toEqual({ kind: "help" });
    // Only the whole message is a command: a sentence with the word is a task.
    expect(decideIntake(msg("stop using var in utils.ts"), conv("running"))).toEqual({ kind: "steer" });
  });

  it("without a run: answer a pending repo question, start when the repo is known, ask otherwise, ignore chatter", () => {
    expect(decideIntake(msg("web"), conv(null, { askedRepo: true }))).toEqual({ kind: "repo_answer" });
    expect(decideIntake(msg("fix it"), conv(null))).toEqual({ kind: "start", repo: "api", continueFrom: false });
    expect(decideIntake(msg("fix it"), conv(null, { repo: null }))).toEqual({ kind: "ask_repo" });
    expect(decideIntake(msg("lunch?", { addressed: false }), conv(null))).toEqual({ kind: "ignore", why: "not addressed" });
    expect(decideIntake(msg(""), conv(null))).toEqual({ kind: "help" });
  });

  it("Slack: channel chatter is ignored, commands included; a reply in our thread needs no mention", () => {
    // Not addressed (no mention, not a DM) and no conversation here: nothing, not even `stop` or `status`.
    for (const t of ["stop", "status", "help", "", "lunch?"]) expect(decideIntake(msg(t, { addressed: false }), conv(null))).toEqual({ kind: "ignore", why: "not addressed" });
    // In a thread with a run, or where we asked which repo, a plain reply is ours.
    expect(decideIntake(msg("also add tests", { addressed: false }), conv("running"))).toEqual({ kind: "steer" });
    expect(decideIntake(msg("stop", { addressed: false }), conv("running"))).toEqual({ kind: "stop", running: true });
    expect(decideIntake(msg("", { addressed: false }), conv(null, { askedRepo: true }))).toEqual({ kind: "repo_answer" });
  });

  it("while the agent waits on its own question, a reply answers it; commands still act; an idle run is continued", () => {
    expect(decideIntake(msg("Gamma Ray", { addressed: false }), conv("running", { agentAsking: true }))).toEqual({ kind: "agent_answer" });
    expect(decideIntake(msg("stop"), conv("running", { agentAsking: true }))).toEqual({ kind: "stop", running: true });
    expect(decideIntake(msg("status"), conv("running", { agentAsking: true }))).toEqual({ kind: "status" });
    expect(decideIntake(msg("  "), conv("running", { agentAsking: true }))).toEqual({ kind: "ignore", why: "empty" });
    // Only a running agent asks: anything else steers, continues or starts as usual.
    expect(decideIntake(msg("more"), conv("idle", { agentAsking: true }))).toEqual({ kind: "continue" });
    expect(decideIntake(msg("more"), conv("queued", { agentAsking: true }))).toEqual({ kind: "steer" });
    // A repo question asked earlier does not outlive the run that answered it.
    expect(decideIntake(msg("more"), conv("running", { askedRepo: true }))).toEqual({ kind: "steer" });
  });

  it("one command list for every surface: Slack's parser uses it; prototype keys are not commands", () => {
    expect(parseMessage("<@U0BOT> cancel", "U0BOT").command).toBe("stop");
    expect(commandOf("constructor")).toBeNull();
    expect(commandOf("__proto__")).toBeNull();
    expect(commandOf("toString")).toBeNull();
  });
});

describe("continuationOf", () => {
  it("continues on the pushed branch; an unpushed one keeps the name and starts from the earlier ref", () => {
    expect(continuationOf({ branch: "deckhand/x", ref: "main", result: { pushed: true } })).toEqual({ ref: "deckhand/x", branch: "deckhand/x", onBranch: true });
    expect(continuationOf({ branch: "deckhand/x", ref: "main", result: { pushed: false } })).toEqual({ ref: "main", branch: "deckhand/x", onBranch: false });
    expect(continuationOf({ branch: "deckhand/x", ref: null, result: null })).toEqual({ ref: null, branch: "deckhand/x", onBranch: false });
  });
});
