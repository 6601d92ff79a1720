/**
 * GitHub delivery, mounted into a Deckhand server: git credentials for GitHub repositories (a token per run,
 * scoped to the one repository, with a GitHub App; GITHUB_TOKEN as the unscoped fallback) and the pull-request
 * publisher. Without either, GitHub repos are cloned and pushed only as far as the remote allows anonymously,
 * and the run page stays the link.
 */
import type { Deckhand } from "../../app.ts";
import { githubWebOrigin } from "../../runs/repos.ts";
import { isTerminal } from "../../runs/model.ts";
import { GitHubCredentials } from "./credentials.ts";
import { PullRequestPublisher } from "./publisher.ts";
import { parseGitHubRepo } from "./repo-url.ts";
import { InstallationTokens, normalizePrivateKey, PersonalToken, type TokenSource } from "./tokens.ts";

export interface GitHubMount {
  tokens: TokenSource;
  publisher: PullRequestPublisher;
  credentials: GitHubCredentials;
}

/** Wire GitHub into `deckhand`; returns the start-up log line. `mounted` (tests) receives what was built. */
export async function mountGitHub(deckhand: Deckhand, mounted?: (m: GitHubMount) => void): Promise<string> {
  const c = deckhand.config;
  const log = deckhand.log.child({ component: "github" });
  const apiUrl = (c.GITHUB_API_URL ?? "https://api.github.com").replace(/\/+$/, "");
  const webOrigin = githubWebOrigin(c.GITHUB_API_URL);
  const githubRepos = deckhand.repos.names().filter((n) => parseGitHubRepo(deckhand.repos.url(n), webOrigin));
  const where = githubRepos.length ? `for ${githubRepos.join(", ")}` : "(no GitHub repo in REPOS yet)";
  const prs = c.GITHUB_PR_DRAFT ? "draft pull requests" : "pull requests ready for review";

  let tokens: TokenSource;
  let line: string;
  if (c.GITHUB_APP_ID && c.GITHUB_APP_PRIVATE_KEY) {
    const app = new InstallationTokens({ appId: c.GITHUB_APP_ID, privateKey: normalizePrivateKey(c.GITHUB_APP_PRIVATE_KEY), apiUrl, log });
    tokens = app;
    line = `github: App ${c.GITHUB_APP_ID} ${where}: a token per run scoped to its repository; ${prs}`;
    // Say early (not at the first run) when the App's id or key is wrong; don't hold start-up on GitHub.
    void app.check().then(
      (a) => log.info({ app: a.slug }, "GitHub App credentials work"),
      (e) => log.error({ err: String((e as Error).message).split("\n")[0] }, "GitHub App credentials do not work: check GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY"),
    );
  } else if (c.GITHUB_TOKEN) {
    tokens = new PersonalToken(c.GITHUB_TOKEN);
    log.warn("GITHUB_TOKEN is a personal token: it is not scoped to one repository or run and cannot be revoked after use. Prefer a GitHub App (docs/github.md)");
    line = `github: personal token (GITHUB_TOKEN, not scoped) ${where}; ${prs}`;
  } else {
    return "github: not configured (set GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY, or GITHUB_TOKEN): no pull requests, the run page is the link";
  }

  const credentials = new GitHubCredentials(tokens, webOrigin);
  const publisher = new PullRequestPublisher({ tokens, apiUrl, webOrigin, draft: c.GITHUB_PR_DRAFT, runPageUrl: (r) => deckhand.service.signedInRunUrl(r), log });
  deckhand.repos.addCredentials(credentials);
  deckhand.addPublisher(publisher);

  // A run keeps its pull-request token for later idles; when it ends, everything it still holds is revoked.
  const off = deckhand.bus.onRun((runId) => {
    if (!tokens.holds(runId)) return;
    void deckhand.store
      .get(runId)
      .then((run) => (run && isTerminal(run.status) ? tokens.releaseRun(runId) : undefined))
      .catch((e) => log.warn({ runId, err: (e as Error).message }, "could not release a run's GitHub tokens"));
  });
  deckhand.onClose(async () => {
    off();
    await tokens.releaseAll();
  });
  mounted?.({ tokens, publisher, credentials });
  return line;
}
