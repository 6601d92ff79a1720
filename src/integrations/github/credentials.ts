/**
 * Git credentials for GitHub repositories (plugged into the RepoRegistry): a read-only token for the sandbox's
 * clone, a contents:write token for the backend's push; each released (revoked) as soon as its git command ends.
 */
import type { GitCredentials } from "../../runs/repos.ts";
import { parseGitHubRepo } from "./repo-url.ts";
import type { TokenSource } from "./tokens.ts";

export const CLONE_PERMISSIONS = { contents: "read" } as const;
export const PUSH_PERMISSIONS = { contents: "write" } as const;

export class GitHubCredentials implements GitCredentials {
  constructor(
    private readonly tokens: TokenSource,
    private readonly webOrigin: string,
  ) {}

  handles(url: string): boolean {
    return parseGitHubRepo(url, this.webOrigin) !== null;
  }

  private repo(url: string) {
    const r = parseGitHubRepo(url, this.webOrigin);
    if (!r) throw new Error(`${url} is not a GitHub repository on ${this.webOrigin}`);
    return r;
  }

  cloneToken(url: string, runId: string): Promise<string> {
    return this.tokens.acquire(runId, this.repo(url), { ...CLONE_PERMISSIONS });
  }

  pushToken(url: string, runId: string): Promise<string> {
    return this.tokens.acquire(runId, this.repo(url), { ...PUSH_PERMISSIONS });
  }

  release(token: string): Promise<void> {
    return this.tokens.release(token);
  }
}
