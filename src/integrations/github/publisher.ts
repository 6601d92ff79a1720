/**
 * Turns a run's pushed branch into a pull request: opened on the first idle with changes, updated (not duplicated)
 * on later idles of the same run. Uses a pull_requests:write token of its own (never the push token), kept for
 * the run's later idles and revoked when the run ends. A GitHub failure never fails the run: the result keeps the
 * run page as its link and says why there is no pull request.
 */
import { Octokit } from "@octokit/rest";
import type { Run } from "../../db/schema.ts";
import { type Logger, runLog } from "../../log/logger.ts";
import type { ResultPublisher } from "../../runs/deliver.ts";
import type { RunResult } from "../../runs/model.ts";
import { pullRequestBody, pullRequestTitle } from "./pull-request.ts";
import { fullName, type GitHubRepo, parseGitHubRepo } from "./repo-url.ts";
import { quietOctokitLog, type TokenSource } from "./tokens.ts";

export const PULL_REQUEST_PERMISSIONS = { pull_requests: "write" } as const;

export interface PullRequestPublisherOptions {
  tokens: TokenSource;
  apiUrl: string;
  webOrigin: string;
  draft: boolean;
  runPageUrl: (run: Run) => string;
  log: Logger;
  /** Waits between attempts on 5xx / 429 / network errors (default 1 s, 3 s). */
  retryDelaysMs?: number[];
}

interface Pull {
  number: number;
  html_url: string;
  draft?: boolean;
}

const status = (e: unknown) => (e as { status?: number }).status;
const plain = (e: unknown) => String((e as Error)?.message ?? e).split("\n")[0]!.slice(0, 300);
const validationText = (e: unknown) => {
  const data = (e as { response?: { data?: { message?: string; errors?: { message?: string; field?: string; code?: string }[] } } }).response?.data;
  return [data?.message, ...(data?.errors ?? []).map((x) => [x.field, x.code, x.message].filter(Boolean).join(" "))].filter(Boolean).join("; ");
};
const transient = (e: unknown) => {
  const s = status(e);
  return s === undefined || s === 429 || s >= 500;
};

export class PullRequestPublisher implements ResultPublisher {
  constructor(private readonly opts: PullRequestPublisherOptions) {}

  handles(_run: Run, repoUrl: string): boolean {
    return parseGitHubRepo(repoUrl, this.opts.webOrigin) !== null;
  }

  async publish(run: Run, result: RunResult, repoUrl: string): Promise<{ url: string } | null> {
    const repo = parseGitHubRepo(repoUrl, this.opts.webOrigin);
    if (!repo) return null;
    const log = runLog(this.opts.log, run.id);
    try {
      const pr = await this.withRetries(run, repo, (gh) => this.upsert(gh, run, result, repo, log));
      result.pullRequestNumber = pr.number;
      return { url: pr.html_url };
    } catch (e) {
      const why = status(e) === 403 ? `GitHub refused (${plain(e)}): the App or token needs "Pull requests: write" on ${fullName(repo)}` : plain(e);
      result.pullRequestError = `No pull request: ${why}`;
      log.warn({ repo: fullName(repo), status: status(e), err: plain(e) }, "could not open or update the pull request");
      return null;
    }
  }

  /** Run `fn` with a client; retry transient failures; on 401 (token revoked or expired early) get a fresh token once. */
  private async withRetries<T>(run: Run, repo: GitHubRepo, fn: (gh: Octokit) => Promise<T>): Promise<T> {
    const delays = this.opts.retryDelaysMs ?? [1000, 3000];
    let refreshed = false;
    for (let attempt = 0; ; attempt++) {
      const token = await this.opts.tokens.acquire(run.id, repo, { ...PULL_REQUEST_PERMISSIONS });
      const gh = new Octokit({ baseUrl: this.opts.apiUrl, auth: token, userAgent: "deckhand", log: quietOctokitLog(this.opts.log) });
      try {
        return await fn(gh);
      } catch (e) {
        if (status(e) === 401 && !refreshed && this.opts.tokens.scoped) {
          refreshed = true;
          await this.opts.tokens.release(token);
          attempt--;
          continue;
        }
        if (!transient(e) || attempt >= delays.length) throw e;
        await new Promise((r) => setTimeout(r, delays[attempt]));
      }
    }
  }

  private async upsert(gh: Octokit, run: Run, result: RunResult, repo: GitHubRepo, log: Logger): Promise<Pull> {
    const title = pullRequestTitle(run);
    const body = pullRequestBody(run, result, this.opts.runPageUrl(run));
    const findOpen = async () => {
      const { data } = await gh.rest.pulls.list({ owner: repo.owner, repo: repo.repo, head: `${repo.owner}:${run.branch}`, state: "open", per_page: 5 });
      return data[0] as Pull | undefined;
    };
    const update = async (p: Pull) => {
      const { data } = await gh.rest.pulls.update({ owner: repo.owner, repo: repo.repo, pull_number: p.number, title, body });
      log.info({ repo: fullName(repo), pullRequest: data.number }, "pull request updated");
      return data as Pull;
    };

    const existing = await findOpen();
    if (existing) return update(existing);

    let base = run.ref ?? (await gh.rest.repos.get({ owner: repo.owner, repo: repo.repo })).data.default_branch;
    let draft = this.opts.draft;
    for (let i = 0; i < 3; i++) {
      try {
        const { data } = await gh.rest.pulls.create({ owner: repo.owner, repo: repo.repo, head: run.branch, base, title, body, draft });
        log.info({ repo: fullName(repo), pullRequest: data.number, draft: data.draft }, "pull request opened");
        return data as Pull;
      } catch (e) {
        if (status(e) !== 422) throw e;
        const text = validationText(e);
        if (/already exists/i.test(text)) {
          const again = await findOpen();
          if (again) return update(again);
        }
        if (draft && /draft/i.test(text)) {
          draft = false; // draft pull requests are not available on this repository's plan
          continue;
        }
        if (run.ref && base === run.ref && /base/i.test(text)) {
          base = (await gh.rest.repos.get({ owner: repo.owner, repo: repo.repo })).data.default_branch; // the run started from a tag or commit
          continue;
        }
        throw new Error(`GitHub refused the pull request: ${text || plain(e)}`);
      }
    }
    throw new Error("GitHub refused the pull request");
  }
}
