/**
 * The repository allowlist (REPOS): a run may only touch a repo configured here. Turns a name into what a clone
 * and a push need. Local paths and file:// URLs work for local development; credentials for hosted remotes
 * come from a `GitCredentials` source (GitHub App tokens, ...), never written into the clone's `.git/config`.
 */
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

export interface GitAccess {
  url: string;
  /** Environment for git carrying credentials for this one command (GIT_CONFIG_* http.extraHeader). */
  env: Record<string, string>;
  /** A repository that is a folder on this server: shipped into the sandbox as a git bundle, never mounted. */
  localPath?: string;
  /** Call once the git command is done: a short-lived credential is revoked right away. Never throws. */
  release(): Promise<void>;
}

export interface GitCredentials {
  /** Does this source serve this clone URL? */
  handles(url: string): boolean;
  /** Read-only credentials for the sandbox's clone, scoped to the repo. */
  cloneToken(url: string, runId: string): Promise<string | null>;
  /** Write credentials for the backend's push. */
  pushToken(url: string, runId: string): Promise<string | null>;
  /** The command using `token` is done: revoke it (a no-op for long-lived tokens). */
  release?(token: string, url: string, runId: string): Promise<void>;
}

export class UnknownRepoError extends Error {
  constructor(
    public readonly repo: string,
    public readonly allowed: string[],
  ) {
    super(`Unknown repo "${repo}". Allowed: ${allowed.length ? allowed.join(", ") : "none (set REPOS)"}`);
    this.name = "UnknownRepoError";
  }
}

/** `http.extraHeader` for one git command through the environment: nothing lands in .git/config. */
export function gitAuthEnv(token: string, user = "x-access-token"): Record<string, string> {
  const basic = Buffer.from(`${user}:${token}`).toString("base64");
  return { GIT_CONFIG_COUNT: "1", GIT_CONFIG_KEY_0: "http.extraHeader", GIT_CONFIG_VALUE_0: `Authorization: Basic ${basic}` };
}

/** The web origin (clone host) of a GitHub API base: api.github.com → github.com, https://ghe/api/v3 → https://ghe. */
export function githubWebOrigin(apiUrl?: string | null): string {
  if (!apiUrl) return "https://github.com";
  const u = new URL(apiUrl);
  if (/^\/api\/v3\/?$/.test(u.pathname) || u.pathname.startsWith("/api/v3/")) return u.origin;
  if (u.hostname.startsWith("api.")) return `${u.protocol}//${u.host.slice(4)}`;
  return u.origin;
}

export class RepoRegistry {
  private readonly credentials: GitCredentials[] = [];

  constructor(
    private readonly repos: Record<string, string>,
    private readonly baseDir = process.cwd(),
    /** Where `owner/name` entries live: https://github.com, or GitHub Enterprise's origin (see githubWebOrigin). */
    private readonly githubOrigin = "https://github.com",
  ) {}

  addCredentials(c: GitCredentials): void {
    this.credentials.push(c);
  }

  names(): string[] {
    return Object.keys(this.repos);
  }

  has(name: string): boolean {
    return Object.prototype.hasOwnProperty.call(this.repos, name);
  }

  /** Throws UnknownRepoError for anything not on the allowlist. */
  url(name: string): string {
    if (!this.has(name)) throw new UnknownRepoError(name, this.names());
    const raw = this.repos[name]!;
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(raw) || /^[\w.-]+@[\w.-]+:/.test(raw)) return raw;
    if (/^[\w.-]+\/[\w.-]+$/.test(raw) && !fs.existsSync(path.resolve(this.baseDir, raw))) return `${this.githubOrigin}/${raw}.git`;
    return pathToFileURL(path.resolve(this.baseDir, raw)).href;
  }

  private localPath(url: string): string | null {
    return url.startsWith("file://") ? decodeURIComponent(new URL(url).pathname) : null;
  }

  private async access(name: string, runId: string, kind: "clone" | "push"): Promise<GitAccess> {
    const url = this.url(name);
    const local = this.localPath(url);
    const cred = this.credentials.find((c) => c.handles(url));
    const token = cred ? await (kind === "clone" ? cred.cloneToken(url, runId) : cred.pushToken(url, runId)) : null;
    let released = false;
    const release = async () => {
      if (released || !token || !cred?.release) return;
      released = true;
      await cred.release(token, url, runId).catch(() => {});
    };
    return { url, env: token ? gitAuthEnv(token) : {}, ...(local ? { localPath: local } : {}), release };
  }

  cloneAccess(name: string, runId: string): Promise<GitAccess> {
    return this.access(name, runId, "clone");
  }

  pushAccess(name: string, runId: string): Promise<GitAccess> {
    return this.access(name, runId, "push");
  }
}
