/**
 * Start a run for a Linear issue: pick the repo (or ask), build the prompt from the issue, work on the issue's
 * suggested branch so Linear links the pull request. The notifier takes it from there.
 */
import { joinedRunningIssue } from "./on-session-created.ts";
import type { Run } from "../../db/schema.ts";
import { continuationOf } from "../../intake/decide.ts";
import { runLog } from "../../log/logger.ts";
import { UnknownRepoError } from "../../runs/repos.ts";
import { RunInputError } from "../../runs/run-service.ts";
import { buildPrompt } from "./build-prompt.ts";
import { askRepoText, chooseRepo, type RepoChoice } from "./choose-repo.ts";
import type { LinearDeps } from "./deps.ts";
import { askedIn, conversationsOfRun } from "./find-runs.ts";
import type { PendingStart } from "./messages.ts";
import { sayWithoutRun } from "./say-without-run.ts";
import type { LinearSourceRef } from "./source-ref.ts";

const BRANCH_RE = /^(?!-|\/)(?!.*\.\.)[\w./-]{1,200}$/;

interface IssueDetails {
  branchName?: string;
  description?: string | null;
  teamKey?: string;
  comments?: { author?: string | null; body: string }[];
}

/** Fetch what the webhook lacks (the suggested branch name; comments for classic runs). Best effort, bounded. */
async function issueDetails(deps: LinearDeps, p: PendingStart, withComments: boolean): Promise<IssueDetails> {
  const work = (async () => {
    const client = await deps.clients.forWorkspace(p.workspaceId);
    // One quick retry: a blip should not cost the issue's branch name.
    const issue = await client.issue(p.issueId).catch(async () => {
      await new Promise((r) => setTimeout(r, 500));
      return client.issue(p.issueId);
    });
    const out: IssueDetails = { branchName: issue.branchName, description: issue.description };
    if (withComments) {
      const cs = await issue.comments({ first: 30 });
      out.comments = cs.nodes.map((c) => ({ body: c.body }));
    }
    if (!p.teamId) out.teamKey = (await issue.team)?.key;
    return out;
  })();
  const timeout = new Promise<IssueDetails>((resolve) => setTimeout(() => resolve({}), 4000).unref());
  return Promise.race([work, timeout]).catch((e) => {
    deps.log.warn({ err: (e as Error).message, issueId: p.issueId }, "could not read the Linear issue; starting with what the webhook said");
    return {};
  });
}

export function repoChoiceFor(deps: Pick<LinearDeps, "config" | "service">, p: PendingStart, teamKey?: string | null, extraTexts: string[] = []): RepoChoice {
  return chooseRepo({
    texts: [...extraTexts, p.request, p.description, p.title],
    teamKey,
    teamRepos: deps.config.LINEAR_TEAM_REPOS,
    defaultRepo: deps.config.DEFAULT_REPO,
    allowed: deps.service.repos.names(),
  });
}

/** The longest text kept from the webhook with a "which repo?" (the issue's description, the request). */
const MAX_KEPT = 40_000;
const bounded = (v: string | null | undefined) => (typeof v === "string" ? v.slice(0, MAX_KEPT) : (v ?? null));

export async function askForRepo(deps: LinearDeps, p: PendingStart, choice: Extract<RepoChoice, { repo: null }>, askKey: string): Promise<void> {
  // What the run would need, kept in the conversation until the answer starts it.
  const start: PendingStart = { ...p, title: p.title.slice(0, 2000), description: bounded(p.description), promptContext: bounded(p.promptContext), request: bounded(p.request) };
  const where = askedIn(p);
  if (!where.endsWith(":")) await deps.conversations.ask("linear", where, { kind: "repo", task: start.request ?? null, askedBy: p.author ?? null, start: start as unknown as Record<string, unknown> });
  // A `select` elicitation: Linear offers the allowed repos to pick from; the pick comes back as a prompt.
  await sayWithoutRun(deps, p, askKey, { type: "elicitation", body: askRepoText(choice) }, choice.allowed);
}

/** Start (repo known) or ask which repo. `dedupe` names this request (for the ask/failure messages). */
/** The database refused a second live run on one issue (runs_linear_issue_live_idx). */
function isLiveIssueConflict(e: unknown): boolean {
  const msgs = [e, (e as { cause?: unknown })?.cause].map((x) => `${(x as Error)?.message ?? ""} ${(x as { constraint_name?: string })?.constraint_name ?? ""}`);
  return msgs.some((m) => m.includes("runs_linear_issue_live_idx"));
}

export async function startLinearRun(
  deps: LinearDeps,
  p: PendingStart,
  o: { repo?: string | null; teamKey?: string | null; dedupe: string; guidance?: string[]; continueFrom?: Run; prompt?: string },
): Promise<Run | null> {
  let repo = o.repo ?? null;
  let teamKey = o.teamKey ?? null;
  if (!repo) {
    const choice = repoChoiceFor(deps, p, teamKey);
    if (choice.repo === null) {
      await askForRepo(deps, p, choice, `linear:ask:${o.dedupe}`);
      return null;
    }
    repo = choice.repo;
  }
  const details = o.continueFrom || !p.issueId ? {} : await issueDetails(deps, p, p.mode === "classic");
  teamKey ??= details.teamKey ?? null;
  const prompt =
    o.prompt ??
    buildPrompt({
      identifier: p.identifier,
      title: p.title,
      description: details.description ?? p.description,
      url: p.url,
      promptContext: p.promptContext,
      request: p.request,
      comments: details.comments,
      guidance: o.guidance,
    });
  const ref: LinearSourceRef = {
    workspaceId: p.workspaceId,
    mode: p.mode,
    ...(p.sessionId ? { agentSessionId: p.sessionId } : {}),
    issueId: p.issueId,
    identifier: p.identifier,
    ...(p.url ? { issueUrl: p.url } : {}),
    ...(p.teamId ? { teamId: p.teamId } : {}),
  };
  const next = o.continueFrom ? continuationOf(o.continueFrom) : null;
  const branch = next ? next.branch : details.branchName && BRANCH_RE.test(details.branchName) ? details.branchName : undefined;
  const ref0 = next ? next.ref : null;
  try {
    const run = await deps.service.start({
      prompt,
      repo,
      ref: ref0,
      source: "linear",
      sourceRef: ref,
      createdBy: p.author ?? null,
      ...(branch ? { branch } : {}),
      title: `${p.identifier}: ${p.title}`.slice(0, 120),
      // The run of its session (or comment thread) and issue from now on, in the run's own transaction.
      conversation: { surface: "linear", keys: (id) => conversationsOfRun(p, id) },
    });
    runLog(deps.log, run.id).info({ issue: p.identifier, repo, branch: run.branch, mode: p.mode }, "linear run started");
    return run;
  } catch (e) {
    if (e instanceof UnknownRepoError) {
      await askForRepo(deps, p, { repo: null, reason: "unknown", asked: repo, allowed: deps.service.repos.names() }, `linear:ask:${o.dedupe}`);
      return null;
    }
    if (e instanceof RunInputError) {
      await sayWithoutRun(deps, p, `linear:refused:${o.dedupe}`, { type: "error", body: `I couldn't start: ${e.message}` });
      return null;
    }
    // Another run on this issue started meanwhile (one live run per issue, enforced by the database): join it.
    if (isLiveIssueConflict(e) && (await joinedRunningIssue(deps, p, `${o.dedupe}:raced`))) return null;
    throw e;
  }
}
