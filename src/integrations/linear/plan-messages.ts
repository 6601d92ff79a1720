/**
 * The Linear notifier's decision: from a run, its digest and what was already planned, the Linear writes owed
 * now. Pure; every message has a deterministic dedupe key (and an activity/comment id derived from it), so
 * planning twice or in two processes sends once.
 *
 * Agent sessions get activities: a first `thought` at once, `action`s for finished tool calls, `thought`s for the
 * agent's commentary (ephemeral for progress), the todo list as the session plan, a `response` (or `error`) at
 * the end, the run page and the PR as external URLs; the agent's questions as `select` elicitations. Classic
 * assignments get a comment thread instead (the agent's questions as replies in it).
 *
 * LINEAR_VERBOSITY: `quiet` leaves out the progress (phases, actions, commentary, status notes): the session shows
 * the start, a note when the run waits in the queue, the plan, the questions and the result. `verbose` adds the
 * agent's reasoning as thoughts. Classic threads are quiet at every level.
 */
import type { OutboxMessage, Plan, PlanInput } from "../../notify/notifier.ts";
import type { RunResult } from "../../runs/model.ts";
import { errorBody, responseBody, resultLink, stoppedBody } from "./describe-result.ts";
import type { ActivityContent, LinearPayload, SelectSignal } from "./messages.ts";
import { neutralizeAgentMarkdown } from "../agent-words.ts";
import { followUpNote, questionComment, questionElicitation, settledNote } from "./questions.ts";
import { linearRef, orderingKeyOf } from "./source-ref.ts";
import { stableUuid } from "./stable-uuid.ts";
import { todosToPlan } from "./todos-to-plan.ts";

/** Progress phases worth a (replaceable) ephemeral thought. */
const PHASE_THOUGHTS: Record<string, (repo: string) => string> = {
  sandbox_created: (repo) => `Sandbox ready; cloning ${repo}…`,
  repo_cloned: (repo) => `Cloned ${repo}; starting the agent…`,
};

const hash = (s: string) => {
  let h = 5381;
  for (let i = 0; i < s.length; i++) h = ((h << 5) + h + s.charCodeAt(i)) | 0;
  return (h >>> 0).toString(36);
};

export function threadCommentId(runId: string): string {
  return stableUuid(`linear:${runId}:thread`);
}

export type LinearVerbosity = "quiet" | "normal" | "verbose";

/** Questions shown in Linear remembered in the surface state (so a settled one gets its note); the newest kept. */
const ASKED_MAX = 50;

export function planLinearMessages({ run, view, digest, state, answers, foreignPrompts }: PlanInput, verbosity: LinearVerbosity = "normal"): Plan {
  const ref = linearRef(run);
  if (!ref) return { messages: [] };
  const out: OutboxMessage[] = [];
  const orderingKey = orderingKeyOf(ref);
  const key = (s: string) => `linear:${run.id}:${s}`;
  const push = (k: string, kind: string, payload: LinearPayload, coalesce = false, role?: "progress" | "final") =>
    out.push({ dedupeKey: k, orderingKey, kind, payload: payload as unknown as Record<string, unknown>, ...(coalesce ? { coalesce } : {}), ...(role ? { role } : {}) });
  const ws = ref.workspaceId;
  // Thoughts and actions after the first are progress (dropped behind a pending answer); answers are final.
  const roleOf = (k: string, content: ActivityContent) =>
    content.type === "response" || content.type === "error" ? "final" : (content.type === "thought" || content.type === "action") && k !== "start" && !/^(queued|input):/.test(k) ? "progress" : undefined;
  const activity = (k: string, content: ActivityContent, ephemeral?: boolean, select?: SelectSignal | null) =>
    push(key(k), `activity.${content.type}`, {
      op: "activity",
      workspaceId: ws,
      sessionId: ref.agentSessionId!,
      id: stableUuid(key(k)),
      content,
      ...(ephemeral ? { ephemeral } : {}),
      ...(select ?? {}),
    }, false, roleOf(k, content));
  const comment = (k: string, body: string, parentId?: string) =>
    push(key(k), "comment", { op: "comment", workspaceId: ws, issueId: ref.issueId, id: k === "thread" ? threadCommentId(run.id) : stableUuid(key(k)), body, ...(parentId ? { parentId } : {}) }, false, /^(response|error|stopped)/.test(k) ? "final" : undefined);
  const agent = ref.mode === "agent";
  const result = run.result as Partial<RunResult> | null;
  let nextState: Record<string, unknown> | undefined;

  // 1. At once: say we started, link the run page, move the issue to "started".
  if (agent) {
    activity("start", { type: "thought", body: `Starting a sandbox for ${run.repo}…` });
    push(key("run-link"), "session", { op: "session", workspaceId: ws, sessionId: ref.agentSessionId!, input: { addedExternalUrls: [{ label: "Deckhand run", url: view.url }], externalLink: view.url } });
  } else {
    comment("thread", `On it: starting a sandbox for ${run.repo}. Follow along at ${view.url}\nReply to this comment to steer the agent.`);
  }
  if (ref.issueId) push(key("start-issue"), "start-issue", { op: "start-issue", workspaceId: ws, issueId: ref.issueId });

  // Waiting in the queue (concurrency limits, or the sandbox provider's circuit breaker open): say so, once per cause.
  const q = view.queue;
  if (run.status === "queued" && q && q.waitingFor !== "nothing") {
    if (agent) activity(`queued:${q.waitingFor}`, { type: "thought", body: q.note });
    else comment(`queued:${q.waitingFor}`, q.note, threadCommentId(run.id));
  }

  // Steered from elsewhere (the run page, the API, the CLI, Slack): the session or thread shows what was asked, by
  // whom, once, at every verbosity (a person's words, not the agent's progress).
  for (const p of foreignPrompts ?? []) {
    const body = followUpNote(p);
    if (agent) activity(`input:${p.seq}`, { type: "thought", body });
    else comment(`input:${p.seq}`, body, threadCommentId(run.id));
  }

  if (agent && verbosity !== "quiet") {
    // 2. Progress: phases, tool calls, commentary (and the agent's reasoning when verbose).
    const seen = new Set<string>();
    for (const p of run.phases) {
      const say = PHASE_THOUGHTS[p.phase];
      // Only while nothing else has happened yet: a late plan should not announce an old phase.
      if (!say || seen.has(p.phase) || digest.timeline.length > 0 || (run.status !== "provisioning" && run.status !== "running")) continue;
      seen.add(p.phase);
      activity(`phase:${p.phase}`, { type: "thought", body: say(run.repo) }, true);
    }
    const items = digest.timeline;
    const toolAfter = (idx: number) => items.slice(idx + 1).some((x) => x.kind === "tool");
    // Reasoning once the model finished it (or the agent is no longer working), in its place among the rest.
    const reasoning = verbosity === "verbose" ? (digest.reasoning ?? []).filter((r) => r.done || !digest.busy) : [];
    let r = 0;
    const reasoningBefore = (seq: number) => {
      for (; r < reasoning.length && reasoning[r]!.seq < seq; r++) {
        activity(`reasoning:${reasoning[r]!.partId}`, { type: "thought", body: `_Thinking:_ ${neutralizeAgentMarkdown(reasoning[r]!.text.trim())}` });
      }
    };
    items.forEach((item, idx) => {
      reasoningBefore(item.seq);
      if (item.kind === "tool") {
        const c = item.call;
        if (c.tool === "todowrite" || (c.status !== "completed" && c.status !== "error")) return;
        const result = c.status === "error" ? `Failed: ${c.result ?? "error"}` : c.result;
        // The result is the tool's output (the agent's), rendered as Markdown by Linear: made inert.
        activity(`tool:${c.callId}`, { type: "action", action: c.verb, parameter: c.target || c.tool, ...(result ? { result: neutralizeAgentMarkdown(result.slice(0, 300)) } : {}) });
      } else if (item.kind === "message" && item.role === "assistant" && item.text.trim() && toolAfter(idx)) {
        // Commentary between tool calls; text not followed by a tool call is the answer (the `response`).
        activity(`text:${item.partId}`, { type: "thought", body: neutralizeAgentMarkdown(item.text.trim().slice(0, 4000)) });
      } else if (item.kind === "status") {
        // Status lines repeat the agent's words ("Waiting for an answer: <its question>", the answer, a provider's error).
        activity(`status:${item.seq}`, { type: "thought", body: neutralizeAgentMarkdown(item.text) }, true);
      }
    });
    reasoningBefore(Number.POSITIVE_INFINITY);
  }

  // The agent's questions and approval asks: a `select` elicitation each (the session awaits input), or a reply in
  // the classic thread. Once settled elsewhere (web, Slack, CLI, timeout), a note saying by whom.
  const asked = Array.isArray(state.asked) ? (state.asked as unknown[]).filter((x): x is string => typeof x === "string") : [];
  const askedNow = [...asked];
  for (const question of view.questions) {
    if (agent) {
      const e = questionElicitation(question);
      activity(`question:${question.id}`, e.content, false, e.select);
    } else comment(`question:${question.id}`, questionComment(question), threadCommentId(run.id));
    if (!askedNow.includes(question.id)) askedNow.push(question.id);
  }
  for (const sq of digest.settledQuestions ?? []) {
    if (!asked.includes(sq.id)) continue;
    const note = settledNote(sq, answers?.find((a) => a.questionId === sq.id));
    if (!note) continue;
    if (agent) activity(`settled:${sq.id}`, { type: "thought", body: note });
    else comment(`settled:${sq.id}`, note, threadCommentId(run.id));
  }
  if (askedNow.length !== asked.length) nextState = { asked: askedNow.slice(-ASKED_MAX) };

  if (agent) {
    const stopped = run.status === "cancelled" || run.status === "failed";
    const plan = todosToPlan(digest.todos, stopped);
    if (plan.length) {
      const h = hash(JSON.stringify(plan));
      if (state.planHash !== h) {
        push(key(`plan:${h}:${digest.lastSeq}`), "session.plan", { op: "session", workspaceId: ws, sessionId: ref.agentSessionId!, input: { plan } }, true, "progress");
        nextState = { ...nextState, planHash: h };
      }
    }
  }

  // 3. The end of a turn, or of the run.
  const stoppedByUser = run.status === "cancelled" || (run.status === "closed" && /^Stopped by /.test(run.statusReason ?? ""));
  if (result && run.deliveredInputSeq > 0 && (run.status === "idle" || run.status === "closed" || run.status === "running") && !stoppedByUser) {
    // `running` again after a follow-up: the earlier turn's answer is still owed if it was missed.
    const turn = run.deliveredInputSeq;
    if (result.filesChanged?.length) {
      const link = resultLink(result, view.url);
      if (ref.issueId) push(key(`attach:${link.url}`), "attach", {
        op: "attach",
        workspaceId: ws,
        issueId: ref.issueId,
        title: link.label === "Pull request" ? `Pull request: ${run.branch}` : `Deckhand diff: ${run.branch}`,
        url: link.url,
        subtitle: `${result.filesChanged.length} file(s), +${result.additions ?? 0} −${result.deletions ?? 0}`,
      });
      if (agent) push(key(`link:${link.url}`), "session", { op: "session", workspaceId: ws, sessionId: ref.agentSessionId!, input: { addedExternalUrls: [{ label: link.label, url: link.url }] } });
    }
    const body = responseBody(result, view.url);
    if (agent) activity(`response:${turn}`, { type: "response", body });
    else comment(`response:${turn}`, body, threadCommentId(run.id));
  }
  if (run.status === "failed") {
    const body = errorBody(run, digest, view.url);
    if (agent) activity("error", { type: "error", body });
    else comment("error", body, threadCommentId(run.id));
  }
  if (stoppedByUser) {
    const body = stoppedBody(run, result, view.url);
    if (agent) activity("stopped", { type: "response", body });
    else comment("stopped", body, threadCommentId(run.id));
  }
  return { messages: out, ...(nextState ? { state: nextState } : {}) };
}

