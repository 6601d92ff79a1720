/**
 * GitHub tokens for runs. With a GitHub App, every token is an installation token minted for ONE repository and
 * only the permissions the caller asks for (contents:read for the clone, contents:write for the push,
 * pull_requests:write for the pull request), cached per run + repo + permissions until shortly before it expires,
 * and revoked (DELETE /installation/token) as soon as its user says it is done with it. A personal token
 * (GITHUB_TOKEN) is the unscoped fallback: the same token for everything, never revoked.
 */
import fs from "node:fs";
import { createAppAuth } from "@octokit/auth-app";
import { Octokit } from "@octokit/rest";
import type { Logger } from "../../log/logger.ts";
import { fullName, type GitHubRepo } from "./repo-url.ts";

export type Permissions = Record<string, "read" | "write">;

export interface TokenSource {
  /** False for a personal token: it can do whatever its owner can, on every repository. */
  readonly scoped: boolean;
  /** A token for `repo` with `permissions`, for this run. */
  acquire(runId: string, repo: GitHubRepo, permissions: Permissions): Promise<string>;
  /** Done with `token`: revoke it now. */
  release(token: string): Promise<void>;
  /** The run ended: revoke whatever it still holds. */
  releaseRun(runId: string): Promise<void>;
  /** Revoke everything (server shutdown). */
  releaseAll(): Promise<void>;
  /** Does this run hold live tokens? */
  holds(runId: string): boolean;
}

export class GitHubAuthError extends Error {
  constructor(
    message: string,
    /** GitHub was unreachable or answered 5xx / 429: worth trying again (provisioning retries). */
    public readonly retryable = false,
  ) {
    super(message);
    this.name = "GitHubAuthError";
  }
}

/** GITHUB_APP_PRIVATE_KEY as given: a PEM (newlines possibly written as `\n`), a base64 PEM, or a path to a .pem file. */
export function normalizePrivateKey(raw: string): string {
  let key = raw.trim();
  if (!key.includes("-----BEGIN")) {
    if (fs.existsSync(key)) key = fs.readFileSync(key, "utf8").trim();
    else {
      const decoded = Buffer.from(key, "base64").toString("utf8");
      if (decoded.includes("-----BEGIN")) key = decoded.trim();
    }
  }
  key = key.replace(/\\n/g, "\n");
  if (!key.includes("-----BEGIN")) throw new GitHubAuthError("GITHUB_APP_PRIVATE_KEY is not a PEM private key (nor a path to one)");
  return `${key}\n`;
}

const permKey = (p: Permissions) =>
  Object.entries(p)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}:${v}`)
    .join(",");

export const describePermissions = (p: Permissions) => permKey(p) || "default permissions";

interface Entry {
  key: string;
  runId: string;
  repo: string;
  permissions: string;
  token: string;
  expiresAt: number;
}

/** Octokit's own log lines, at debug (they never carry tokens: Octokit redacts authorization). */
export function quietOctokitLog(log: Logger) {
  return { debug: () => {}, info: () => {}, warn: (m: string) => log.debug({ octokit: m }, "octokit"), error: (m: string) => log.debug({ octokit: m }, "octokit") };
}

const errStatus = (e: unknown) => (e as { status?: number }).status;
const isTransient = (e: unknown) => {
  const s = errStatus(e);
  return s === undefined || s === 429 || s >= 500;
};
const plain = (e: unknown) => String((e as Error)?.message ?? e).split("\n")[0]!.slice(0, 300);

export interface InstallationTokensOptions {
  appId: number;
  privateKey: string;
  apiUrl: string;
  log: Logger;
  /** Mint a fresh token when the cached one expires within this margin (default 10 minutes). */
  refreshMarginMs?: number;
  now?: () => number;
}

/** GitHub App installation tokens, per run and repository. */
export class InstallationTokens implements TokenSource {
  readonly scoped = true;
  private readonly auth: ReturnType<typeof createAppAuth>;
  private readonly request: Octokit["request"];
  private readonly entries = new Map<string, Entry>();
  private readonly pending = new Map<string, Promise<Entry>>();
  private readonly installations = new Map<string, Promise<number>>();
  private readonly margin: number;
  private readonly now: () => number;
  /** How many tokens were minted and revoked (start-up log, tests). */
  readonly stats = { minted: 0, revoked: 0 };

  constructor(private readonly opts: InstallationTokensOptions) {
    this.request = new Octokit({ baseUrl: opts.apiUrl.replace(/\/+$/, ""), userAgent: "deckhand", log: quietOctokitLog(opts.log) }).request;
    this.auth = createAppAuth({ appId: opts.appId, privateKey: opts.privateKey, request: this.request });
    this.margin = opts.refreshMarginMs ?? 10 * 60_000;
    this.now = opts.now ?? Date.now;
  }

  /** Check the app's credentials (GET /app): the start-up log says whether the App works. */
  async check(): Promise<{ slug: string | null }> {
    const { token } = await this.auth({ type: "app" });
    const { data } = await this.request("GET /app", { headers: { authorization: `bearer ${token}` } });
    return { slug: (data as { slug?: string } | null)?.slug ?? null };
  }

  private installationId(repo: GitHubRepo): Promise<number> {
    const name = fullName(repo).toLowerCase();
    let p = this.installations.get(name);
    if (!p) {
      p = (async () => {
        const { token } = await this.auth({ type: "app" });
        try {
          const { data } = await this.request("GET /repos/{owner}/{repo}/installation", {
            owner: repo.owner,
            repo: repo.repo,
            headers: { authorization: `bearer ${token}` },
          });
          return data.id;
        } catch (e) {
          if (errStatus(e) === 404) throw new GitHubAuthError(`The GitHub App is not installed on ${fullName(repo)} (install it on that repository or organization)`);
          throw new GitHubAuthError(`Could not find the GitHub App installation for ${fullName(repo)}: ${plain(e)}`, isTransient(e));
        }
      })();
      this.installations.set(name, p);
      p.catch(() => this.installations.delete(name));
    }
    return p;
  }

  async acquire(runId: string, repo: GitHubRepo, permissions: Permissions): Promise<string> {
    const key = `${runId}|${fullName(repo).toLowerCase()}|${permKey(permissions)}`;
    const cached = this.entries.get(key);
    if (cached && cached.expiresAt - this.now() > this.margin) return cached.token;
    let p = this.pending.get(key);
    if (!p) {
      p = this.mint(key, runId, repo, permissions).finally(() => this.pending.delete(key));
      this.pending.set(key, p);
    }
    const entry = await p;
    if (cached && cached.token !== entry.token) void this.revoke(cached, "refreshed before expiry");
    return entry.token;
  }

  private async mint(key: string, runId: string, repo: GitHubRepo, permissions: Permissions): Promise<Entry> {
    const installationId = await this.installationId(repo);
    let auth;
    try {
      // refresh: our own cache decides reuse; auth-app's cache would hand back a token we revoked.
      auth = await this.auth({ type: "installation", installationId, repositoryNames: [repo.repo], permissions, refresh: true });
    } catch (e) {
      throw new GitHubAuthError(`Could not get a GitHub token for ${fullName(repo)} (${describePermissions(permissions)}): ${plain(e)}`, isTransient(e));
    }
    const entry: Entry = { key, runId, repo: fullName(repo), permissions: permKey(permissions), token: auth.token, expiresAt: Date.parse(auth.expiresAt) };
    this.entries.set(key, entry);
    this.stats.minted++;
    this.opts.log.debug({ runId, repo: entry.repo, permissions: entry.permissions, expiresAt: auth.expiresAt }, "minted a GitHub installation token");
    return entry;
  }

  private async revoke(entry: Entry, why: string): Promise<void> {
    if (this.entries.get(entry.key)?.token === entry.token) this.entries.delete(entry.key);
    try {
      await this.request("DELETE /installation/token", { headers: { authorization: `token ${entry.token}` } });
      this.stats.revoked++;
      this.opts.log.debug({ runId: entry.runId, repo: entry.repo, permissions: entry.permissions, why }, "revoked a GitHub installation token");
    } catch (e) {
      // 401: already expired or revoked; anything else: it expires within the hour anyway.
      if (errStatus(e) === 401) return;
      this.opts.log.warn({ runId: entry.runId, repo: entry.repo, permissions: entry.permissions, err: plain(e) }, "could not revoke a GitHub installation token; it expires within the hour");
    }
  }

  async release(token: string): Promise<void> {
    const entry = [...this.entries.values()].find((e) => e.token === token);
    if (entry) await this.revoke(entry, "released");
  }

  async releaseRun(runId: string): Promise<void> {
    await Promise.all([...this.entries.values()].filter((e) => e.runId === runId).map((e) => this.revoke(e, "run ended")));
  }

  async releaseAll(): Promise<void> {
    await Promise.all([...this.entries.values()].map((e) => this.revoke(e, "shutting down")));
  }

  holds(runId: string): boolean {
    for (const e of this.entries.values()) if (e.runId === runId) return true;
    return false;
  }
}

/** A personal access token (GITHUB_TOKEN): one token for every run and repository; nothing to revoke. */
export class PersonalToken implements TokenSource {
  readonly scoped = false;
  constructor(private readonly token: string) {}
  async acquire(): Promise<string> {
    return this.token;
  }
  async release(): Promise<void> {}
  async releaseRun(): Promise<void> {}
  async releaseAll(): Promise<void> {}
  holds(): boolean {
    return false;
  }
}
