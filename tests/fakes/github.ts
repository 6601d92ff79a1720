/**
 * Fake GitHub: the only stand-in for GitHub in the test suite.
 *
 * One loopback HTTP server speaks two things:
 *   - the REST API under `/api/v3` (GitHub Enterprise style, so the REAL Octokit + `@octokit/auth-app` talk to it
 *     through `baseUrl: fake.apiUrl`): app JWT auth (RS256, verified against the key pair generated here),
 *     installation access tokens, repos, pulls, issue comments, rate limit — GitHub's wire format and error shapes;
 *   - git smart HTTP at `${gitBaseUrl}/{owner}/{repo}.git`, served by spawning the real `git http-backend` over bare
 *     repos in a temp dir, with GitHub's auth rules (HTTP Basic, password = token, usually user `x-access-token`).
 *
 * Scoping: an installation token may be limited to some repositories and permissions. Out-of-scope repos answer
 * 404 (API and git, as GitHub does for private repos); a missing permission answers 403 ("Resource not accessible by
 * integration" on the API, "Permission to o/r.git denied" on git push). Bad/expired/revoked tokens answer 401.
 *
 * The single installation (`fake.installationId`) covers every repo created with `createRepo`, whatever its owner;
 * `repositories: ["name"]` in a token request is matched against repo NAMES (like GitHub — "owner/name" is a 422).
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";

export interface MintedToken {
  token: string;
  installationId: number;
  repositories?: string[]; // repo names as requested / resolved (undefined = every repo of the installation)
  permissions: Record<string, string>; // what the token actually got (always includes metadata: "read")
  expiresAt: string; // ISO
  revoked: boolean;
  /** "owner/repo" of every repo the token may touch (undefined = all). */
  fullNames?: string[];
  createdAt: string;
}

export interface FakePull {
  owner: string;
  repo: string;
  number: number;
  title: string;
  body: string;
  head: string; // branch name (no "owner:")
  base: string;
  draft: boolean;
  html_url: string;
  updates: number; // successful PATCHes
  state: "open" | "closed";
  id: number;
  createdAt: string;
  updatedAt: string;
}

export interface FakeComment {
  owner: string;
  repo: string;
  issueNumber: number;
  id: number;
  body: string;
  html_url: string;
}

export interface FakeRequest {
  method: string;
  path: string; // req.url as received, e.g. "/api/v3/repos/o/r/pulls?head=o%3Ab" or "/o/r.git/info/refs?service=..."
  /** "jwt" for an app JWT, the token (installation/personal, from `token`/`Bearer`/Basic) otherwise; undefined if none. */
  auth?: string;
  status?: number; // filled in once answered
}

export interface FakeGitHub {
  apiUrl: string; // "http://127.0.0.1:PORT/api/v3"
  gitBaseUrl: string; // "http://127.0.0.1:PORT" → clone URL `${gitBaseUrl}/${owner}/${repo}.git`
  appId: number;
  appPrivateKey: string; // PKCS#1 PEM ("BEGIN RSA PRIVATE KEY"), like the key GitHub lets you download
  installationId: number;
  tokens: MintedToken[];
  pulls: FakePull[];
  comments: FakeComment[];
  requests: FakeRequest[];
  /** `files` defaults to `{ "README.md": "# <repo>\n" }`; pass `{}` for an empty repo (no commits, no branches). */
  createRepo(
    owner: string,
    repo: string,
    files?: Record<string, string>,
    defaultBranch?: string,
  ): Promise<{ bareDir: string; cloneUrl: string }>;
  branchHead(owner: string, repo: string, branch: string): Promise<string | null>;
  fileAt(owner: string, repo: string, ref: string, path: string): Promise<string | null>;
  addPersonalToken(token: string): void;
  expireToken(token: string): void;
  /** The next `n` requests whose path (with or without the `/api/v3` prefix) starts with `pathPrefix` get `status`. */
  failNext(pathPrefix: string, n: number, status: number): void;
  close(): Promise<void>;
}

interface RepoRec {
  owner: string;
  name: string;
  id: number;
  bareDir: string;
  defaultBranch: string;
  nextNumber: number;
  createdAt: string;
}

type Grant =
  | { kind: "personal"; token: string }
  | { kind: "installation"; token: string; minted: MintedToken };

const INSTALLATION_PERMISSIONS: Record<string, string> = {
  contents: "write",
  pull_requests: "write",
  issues: "write",
  metadata: "read",
  checks: "write",
  statuses: "write",
};

const DOCS = "https://docs.github.com/rest";

function b64url(s: string): string {
  return Buffer.from(s, "base64url").toString("utf8");
}

function runGit(
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string | Buffer } = {},
): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("git", args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    let err = "";
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout: Buffer.concat(out), stderr: err }));
    child.stdin.on("error", () => {});
    child.stdin.end(opts.input ?? undefined);
  });
}

export async function startFakeGitHub(): Promise<FakeGitHub> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), "fake-github-"));
  const reposRoot = path.join(root, "repos");
  const home = path.join(root, "home");
  await fs.mkdir(reposRoot, { recursive: true });
  await fs.mkdir(home, { recursive: true });

  const gitEnv: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: home,
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_AUTHOR_NAME: "Fake GitHub",
    GIT_AUTHOR_EMAIL: "fake@github.invalid",
    GIT_COMMITTER_NAME: "Fake GitHub",
    GIT_COMMITTER_EMAIL: "fake@github.invalid",
    LANG: "C",
  };

  const { privateKey, publicKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
  const appPrivateKey = privateKey.export({ type: "pkcs1", format: "pem" }).toString();
  const appId = 100000 + crypto.randomInt(800000);
  const installationId = 10000000 + crypto.randomInt(80000000);

  const repos = new Map<string, RepoRec>(); // key "owner/name" lowercased
  const tokens: MintedToken[] = [];
  const personal = new Set<string>();
  const pulls: FakePull[] = [];
  const comments: FakeComment[] = [];
  const requests: FakeRequest[] = [];
  const failures: { prefix: string; remaining: number; status: number }[] = [];
  let nextRepoId = 500000;
  let nextPullId = 9000000;
  let nextCommentId = 7000000;
  let baseUrl = ""; // set once listening

  const key = (owner: string, name: string) => `${owner}/${name}`.toLowerCase();
  const getRepo = (owner: string, name: string) => repos.get(key(owner, name));

  // ---------- git helpers ----------
  async function revParse(repo: RepoRec, rev: string): Promise<string | null> {
    const r = await runGit(["--git-dir", repo.bareDir, "rev-parse", "--verify", "-q", `${rev}^{commit}`], { env: gitEnv });
    return r.code === 0 ? r.stdout.toString().trim() : null;
  }
  const headOf = (repo: RepoRec, branch: string) => revParse(repo, `refs/heads/${branch}`);

  async function createRepo(owner: string, name: string, files?: Record<string, string>, defaultBranch = "main") {
    if (getRepo(owner, name)) throw new Error(`fake github: repo ${owner}/${name} already exists`);
    const bareDir = path.join(reposRoot, owner, `${name}.git`);
    await fs.mkdir(path.dirname(bareDir), { recursive: true });
    const init = await runGit(["init", "-q", "--bare", `--initial-branch=${defaultBranch}`, bareDir], { env: gitEnv });
    if (init.code !== 0) throw new Error(`git init failed: ${init.stderr}`);
    await runGit(["--git-dir", bareDir, "config", "http.receivepack", "true"], { env: gitEnv });
    const content = files ?? { "README.md": `# ${name}\n` };
    if (Object.keys(content).length > 0) {
      const env = { ...gitEnv, GIT_INDEX_FILE: path.join(root, `index-${crypto.randomUUID()}`) };
      for (const [p, text] of Object.entries(content)) {
        const h = await runGit(["--git-dir", bareDir, "hash-object", "-w", "--stdin"], { env, input: text });
        if (h.code !== 0) throw new Error(`hash-object failed: ${h.stderr}`);
        const u = await runGit(
          ["--git-dir", bareDir, "update-index", "--add", "--cacheinfo", `100644,${h.stdout.toString().trim()},${p}`],
          { env },
        );
        if (u.code !== 0) throw new Error(`update-index failed: ${u.stderr}`);
      }
      const tree = (await runGit(["--git-dir", bareDir, "write-tree"], { env })).stdout.toString().trim();
      const commit = await runGit(["--git-dir", bareDir, "commit-tree", tree, "-m", "Initial commit"], { env });
      if (commit.code !== 0) throw new Error(`commit-tree failed: ${commit.stderr}`);
      await runGit(["--git-dir", bareDir, "update-ref", `refs/heads/${defaultBranch}`, commit.stdout.toString().trim()], {
        env,
      });
      await fs.rm(env.GIT_INDEX_FILE!, { force: true });
    }
    const rec: RepoRec = {
      owner,
      name,
      id: nextRepoId++,
      bareDir,
      defaultBranch,
      nextNumber: 1,
      createdAt: new Date().toISOString(),
    };
    repos.set(key(owner, name), rec);
    return { bareDir, cloneUrl: `${baseUrl}/${owner}/${name}.git` };
  }

  // ---------- auth ----------
  type ParsedAuth = { scheme: "jwt"; jwt: string } | { scheme: "token" | "basic"; token: string } | null;

  function parseAuth(header: string | undefined): ParsedAuth {
    if (!header) return null;
    const m = /^(\S+)\s+(.+)$/.exec(header.trim());
    if (!m) return { scheme: "token", token: header.trim() };
    const scheme = m[1]!.toLowerCase();
    const value = m[2]!.trim();
    if (scheme === "basic") {
      const decoded = Buffer.from(value, "base64").toString("utf8");
      const i = decoded.indexOf(":");
      const user = i < 0 ? decoded : decoded.slice(0, i);
      const pass = i < 0 ? "" : decoded.slice(i + 1);
      // GitHub accepts the token as password (any username) or as username with an empty / x-oauth-basic password.
      const token = pass && pass !== "x-oauth-basic" ? pass : user;
      return { scheme: "basic", token };
    }
    if (scheme === "bearer" && value.split(".").length === 3) return { scheme: "jwt", jwt: value };
    return { scheme: "token", token: value };
  }

  function lookupToken(token: string): Grant | null {
    if (personal.has(token)) return { kind: "personal", token };
    const minted = tokens.find((t) => t.token === token);
    if (!minted || minted.revoked || Date.parse(minted.expiresAt) <= Date.now()) return null;
    return { kind: "installation", token, minted };
  }

  function canSeeRepo(g: Grant, repo: RepoRec): boolean {
    if (g.kind === "personal") return true;
    if (!g.minted.fullNames) return true;
    return g.minted.fullNames.some((f) => f.toLowerCase() === key(repo.owner, repo.name));
  }

  function hasPerm(g: Grant, perm: string, level: "read" | "write"): boolean {
    if (g.kind === "personal") return true;
    const p = g.minted.permissions[perm];
    return level === "read" ? p === "read" || p === "write" : p === "write";
  }

  /** Returns null when valid, else GitHub's error message. */
  function verifyJwt(jwt: string): string | null {
    const parts = jwt.split(".");
    if (parts.length !== 3) return "A JSON web token could not be decoded";
    let header: any;
    let payload: any;
    try {
      header = JSON.parse(b64url(parts[0]!));
      payload = JSON.parse(b64url(parts[1]!));
    } catch {
      return "A JSON web token could not be decoded";
    }
    if (header?.alg !== "RS256") return "A JSON web token could not be decoded";
    const ok = crypto.verify(
      "sha256",
      Buffer.from(`${parts[0]}.${parts[1]}`),
      publicKey,
      Buffer.from(parts[2]!, "base64url"),
    );
    if (!ok) return "A JSON web token could not be decoded";
    const now = Math.floor(Date.now() / 1000);
    if (!Number.isInteger(payload.iat) || payload.iat > now + 60)
      return "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued";
    if (typeof payload.exp !== "number" || payload.exp <= now)
      return "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires";
    if (payload.exp > now + 600 + 5) return "'Expiration time' claim ('exp') is too far in the future";
    if (String(payload.iss) !== String(appId)) return "Integration not found";
    return null;
  }

  // ---------- JSON shapes ----------
  const userJson = (login: string, type = "Organization") => ({
    login,
    id: 1000 + (Math.abs([...login].reduce((h, c) => (h * 31 + c.charCodeAt(0)) | 0, 7)) % 1_000_000),
    node_id: `MDQ6VXNlcj${Buffer.from(login).toString("base64url")}`,
    type,
    site_admin: false,
    html_url: `${baseUrl}/${login}`,
    url: `${baseUrl}/api/v3/users/${login}`,
  });
  const botUser = () => ({ ...userJson("deckhand-fake[bot]", "Bot") });

  const repoJson = (r: RepoRec) => ({
    id: r.id,
    node_id: `R_kg${r.id}`,
    name: r.name,
    full_name: `${r.owner}/${r.name}`,
    private: true,
    visibility: "private",
    owner: userJson(r.owner),
    html_url: `${baseUrl}/${r.owner}/${r.name}`,
    url: `${baseUrl}/api/v3/repos/${r.owner}/${r.name}`,
    clone_url: `${baseUrl}/${r.owner}/${r.name}.git`,
    git_url: `${baseUrl}/${r.owner}/${r.name}.git`,
    default_branch: r.defaultBranch,
    fork: false,
    archived: false,
    disabled: false,
    created_at: r.createdAt,
    updated_at: r.createdAt,
    pushed_at: r.createdAt,
  });

  const installationJson = () => {
    const first = [...repos.values()][0];
    const login = first?.owner ?? "fake-org";
    return {
      id: installationId,
      account: userJson(login),
      app_id: appId,
      app_slug: "deckhand-fake",
      target_id: userJson(login).id,
      target_type: "Organization",
      repository_selection: "all",
      access_tokens_url: `${baseUrl}/api/v3/app/installations/${installationId}/access_tokens`,
      repositories_url: `${baseUrl}/api/v3/installation/repositories`,
      html_url: `${baseUrl}/organizations/${login}/settings/installations/${installationId}`,
      permissions: INSTALLATION_PERMISSIONS,
      events: ["pull_request", "push"],
      created_at: "2024-01-01T00:00:00Z",
      updated_at: "2024-01-01T00:00:00Z",
      single_file_name: null,
      suspended_at: null,
    };
  };

  async function pullJson(p: FakePull) {
    const r = getRepo(p.owner, p.repo)!;
    const [headSha, baseSha] = await Promise.all([headOf(r, p.head), headOf(r, p.base)]);
    const api = `${baseUrl}/api/v3/repos/${r.owner}/${r.name}`;
    return {
      url: `${api}/pulls/${p.number}`,
      id: p.id,
      node_id: `PR_kw${p.id}`,
      html_url: p.html_url,
      diff_url: `${p.html_url}.diff`,
      patch_url: `${p.html_url}.patch`,
      issue_url: `${api}/issues/${p.number}`,
      comments_url: `${api}/issues/${p.number}/comments`,
      number: p.number,
      state: p.state,
      locked: false,
      title: p.title,
      body: p.body,
      user: botUser(),
      labels: [],
      created_at: p.createdAt,
      updated_at: p.updatedAt,
      closed_at: p.state === "closed" ? p.updatedAt : null,
      merged_at: null,
      merge_commit_sha: null,
      draft: p.draft,
      head: { label: `${r.owner}:${p.head}`, ref: p.head, sha: headSha, user: userJson(r.owner), repo: repoJson(r) },
      base: { label: `${r.owner}:${p.base}`, ref: p.base, sha: baseSha, user: userJson(r.owner), repo: repoJson(r) },
      author_association: "NONE",
      merged: false,
      mergeable: null,
    };
  }

  // ---------- responses ----------
  let requestSeq = 0;
  function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
    if (res.headersSent) return;
    const common: Record<string, string> = {
      "x-github-request-id": `FAKE:${(++requestSeq).toString(16).toUpperCase()}`,
      "x-github-api-version-selected": "2022-11-28",
      "x-ratelimit-limit": "5000",
      "x-ratelimit-remaining": String(Math.max(0, 5000 - requests.length)),
      "x-ratelimit-reset": String(Math.floor(Date.now() / 1000) + 3600),
      "x-ratelimit-used": String(requests.length),
      "x-ratelimit-resource": "core",
    };
    if (status === 204 || body === undefined) {
      res.writeHead(status, { ...common, ...headers });
      res.end();
      return;
    }
    const text = JSON.stringify(body);
    res.writeHead(status, {
      ...common,
      "content-type": "application/json; charset=utf-8",
      "content-length": String(Buffer.byteLength(text)),
      ...headers,
    });
    res.end(text);
  }
  const error = (res: http.ServerResponse, status: number, message: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) =>
    send(res, status, { message, documentation_url: DOCS, status: String(status), ...extra }, headers);
  const notFound = (res: http.ServerResponse) => error(res, 404, "Not Found");
  const badCreds = (res: http.ServerResponse) => error(res, 401, "Bad credentials");
  const forbidden = (res: http.ServerResponse, perm: string) =>
    error(res, 403, "Resource not accessible by integration", {}, { "x-accepted-github-permissions": perm });
  const validation = (res: http.ServerResponse, message: string, errors: unknown[] = []) =>
    error(res, 422, message, errors.length ? { errors } : {});

  async function readBody(req: http.IncomingMessage): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  // ---------- REST API ----------
  async function handleApi(req: http.IncomingMessage, res: http.ServerResponse, apiPath: string, url: URL, auth: ParsedAuth) {
    const method = req.method ?? "GET";
    const raw = await readBody(req);
    let body: any = {};
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw.toString("utf8"));
      } catch {
        return error(res, 400, "Problems parsing JSON");
      }
    }
    const seg = apiPath.split("/").filter(Boolean).map(decodeURIComponent);

    // --- app (JWT) endpoints ---
    const isAppRoute =
      seg[0] === "app" || (seg[0] === "repos" && seg.length === 4 && seg[3] === "installation");
    if (isAppRoute) {
      if (!auth || auth.scheme !== "jwt") {
        return error(res, 401, "A JSON web token could not be decoded");
      }
      const jwtErr = verifyJwt(auth.jwt);
      if (jwtErr) return error(res, jwtErr === "Integration not found" ? 404 : 401, jwtErr);

      if (method === "GET" && seg.length === 1) {
        return send(res, 200, {
          id: appId,
          slug: "deckhand-fake",
          name: "Deckhand (fake)",
          owner: userJson("fake-org"),
          permissions: INSTALLATION_PERMISSIONS,
          events: ["pull_request", "push"],
        });
      }
      if (method === "GET" && seg.length === 2 && seg[1] === "installations") {
        return send(res, 200, [installationJson()]);
      }
      if (method === "GET" && seg.length === 3 && seg[1] === "installations") {
        return Number(seg[2]) === installationId ? send(res, 200, installationJson()) : notFound(res);
      }
      if (method === "GET" && seg[0] === "repos") {
        return getRepo(seg[1]!, seg[2]!) ? send(res, 200, installationJson()) : notFound(res);
      }
      if (method === "POST" && seg.length === 4 && seg[1] === "installations" && seg[3] === "access_tokens") {
        if (Number(seg[2]) !== installationId) return notFound(res);
        return mintToken(res, body);
      }
      return notFound(res);
    }

    // --- token endpoints ---
    if (auth?.scheme === "jwt") {
      // GitHub refuses app JWTs outside the /app endpoints.
      return error(res, 401, "A JSON web token could not be decoded");
    }
    const grant = auth ? lookupToken(auth.token) : null;
    if (auth && !grant) return badCreds(res);

    if (method === "GET" && apiPath === "/rate_limit") {
      const reset = Math.floor(Date.now() / 1000) + 3600;
      const core = { limit: 5000, used: requests.length, remaining: Math.max(0, 5000 - requests.length), reset };
      return send(res, 200, {
        resources: {
          core,
          search: { limit: 30, used: 0, remaining: 30, reset },
          graphql: { limit: 5000, used: 0, remaining: 5000, reset },
        },
        rate: core,
      });
    }
    if (!grant) return error(res, 401, "Requires authentication");

    if (method === "DELETE" && apiPath === "/installation/token") {
      if (grant.kind !== "installation") return error(res, 403, "Resource not accessible by personal access token");
      grant.minted.revoked = true;
      return send(res, 204, undefined);
    }
    if (method === "GET" && apiPath === "/installation/repositories") {
      if (grant.kind !== "installation") return error(res, 403, "Resource not accessible by personal access token");
      const list = [...repos.values()].filter((r) => canSeeRepo(grant, r));
      return send(res, 200, {
        total_count: list.length,
        repository_selection: grant.minted.fullNames ? "selected" : "all",
        repositories: list.map(repoJson),
      });
    }

    if (seg[0] !== "repos" || seg.length < 3) return notFound(res);
    const repo = getRepo(seg[1]!, seg[2]!);
    if (!repo || !canSeeRepo(grant, repo)) return notFound(res);
    const rest = seg.slice(3);

    if (rest.length === 0 && method === "GET") return send(res, 200, repoJson(repo));

    if (rest[0] === "pulls") {
      if (rest.length === 1 && method === "GET") {
        if (!hasPerm(grant, "pull_requests", "read")) return forbidden(res, "pull_requests=read");
        const state = url.searchParams.get("state") ?? "open";
        const head = url.searchParams.get("head");
        const base = url.searchParams.get("base");
        let list = pulls.filter((p) => key(p.owner, p.repo) === key(repo.owner, repo.name));
        if (state !== "all") list = list.filter((p) => p.state === state);
        if (head) {
          const i = head.indexOf(":");
          const headOwner = i < 0 ? null : head.slice(0, i);
          const headRef = i < 0 ? head : head.slice(i + 1);
          list = list.filter(
            (p) => p.head === headRef && (headOwner === null || headOwner.toLowerCase() === repo.owner.toLowerCase()),
          );
        }
        if (base) list = list.filter((p) => p.base === base);
        list = [...list].sort((a, b) => b.number - a.number);
        return send(res, 200, await Promise.all(list.map(pullJson)));
      }
      if (rest.length === 1 && method === "POST") {
        if (!hasPerm(grant, "pull_requests", "write")) return forbidden(res, "pull_requests=write");
        return createPull(res, repo, body);
      }
      if (rest.length === 2) {
        const number = Number(rest[1]);
        const p = pulls.find((x) => key(x.owner, x.repo) === key(repo.owner, repo.name) && x.number === number);
        if (method === "GET") {
          if (!hasPerm(grant, "pull_requests", "read")) return forbidden(res, "pull_requests=read");
          return p ? send(res, 200, await pullJson(p)) : notFound(res);
        }
        if (method === "PATCH") {
          if (!hasPerm(grant, "pull_requests", "write")) return forbidden(res, "pull_requests=write");
          if (!p) return notFound(res);
          if (body.state !== undefined && body.state !== "open" && body.state !== "closed") {
            return validation(res, "Validation Failed", [{ resource: "PullRequest", field: "state", code: "invalid" }]);
          }
          if (body.base !== undefined && !(await headOf(repo, String(body.base)))) {
            return validation(res, "Validation Failed", [{ resource: "PullRequest", field: "base", code: "invalid" }]);
          }
          if (typeof body.title === "string") p.title = body.title;
          if (typeof body.body === "string") p.body = body.body;
          if (typeof body.base === "string") p.base = body.base;
          if (body.state === "open" || body.state === "closed") p.state = body.state;
          // Like GitHub, `draft` is not changeable through REST PATCH (it needs GraphQL) and is silently ignored.
          p.updates++;
          p.updatedAt = new Date().toISOString();
          return send(res, 200, await pullJson(p));
        }
      }
      return notFound(res);
    }

    if (rest[0] === "issues" && rest.length === 3 && rest[2] === "comments" && method === "POST") {
      const number = Number(rest[1]);
      const p = pulls.find((x) => key(x.owner, x.repo) === key(repo.owner, repo.name) && x.number === number);
      if (!hasPerm(grant, "issues", "write") && !(p && hasPerm(grant, "pull_requests", "write"))) {
        return forbidden(res, "issues=write; pull_requests=write");
      }
      if (!p) return notFound(res);
      if (typeof body.body !== "string" || body.body.length === 0) {
        return validation(res, "Invalid request.\n\n\"body\" wasn't supplied.");
      }
      const id = nextCommentId++;
      const c: FakeComment = {
        owner: repo.owner,
        repo: repo.name,
        issueNumber: number,
        id,
        body: body.body,
        html_url: `${p.html_url}#issuecomment-${id}`,
      };
      comments.push(c);
      const now = new Date().toISOString();
      return send(res, 201, {
        id,
        node_id: `IC_kw${id}`,
        url: `${baseUrl}/api/v3/repos/${repo.owner}/${repo.name}/issues/comments/${id}`,
        html_url: c.html_url,
        issue_url: `${baseUrl}/api/v3/repos/${repo.owner}/${repo.name}/issues/${number}`,
        body: c.body,
        user: botUser(),
        created_at: now,
        updated_at: now,
        author_association: "NONE",
      });
    }

    return notFound(res);
  }

  function mintToken(res: http.ServerResponse, body: any) {
    let fullNames: string[] | undefined;
    let names: string[] | undefined;
    const all = [...repos.values()];
    const selected: RepoRec[] = [];
    const bad = () =>
      validation(res, "There is at least one repository that does not exist or is not accessible to the parent installation.");
    if (body.repositories !== undefined) {
      if (!Array.isArray(body.repositories)) return validation(res, "Invalid request.\n\nFor 'properties/repositories', is not an array.");
      for (const n of body.repositories) {
        const matches = all.filter((r) => typeof n === "string" && r.name.toLowerCase() === n.toLowerCase());
        if (matches.length === 0) return bad();
        selected.push(...matches);
      }
    }
    if (body.repository_ids !== undefined) {
      if (!Array.isArray(body.repository_ids)) return validation(res, "Invalid request.\n\nFor 'properties/repository_ids', is not an array.");
      for (const id of body.repository_ids) {
        const r = all.find((x) => x.id === Number(id));
        if (!r) return bad();
        selected.push(r);
      }
    }
    if (body.repositories !== undefined || body.repository_ids !== undefined) {
      const uniq = [...new Map(selected.map((r) => [key(r.owner, r.name), r])).values()];
      fullNames = uniq.map((r) => `${r.owner}/${r.name}`);
      names = uniq.map((r) => r.name);
    }
    let permissions: Record<string, string>;
    if (body.permissions !== undefined) {
      if (typeof body.permissions !== "object" || body.permissions === null || Array.isArray(body.permissions)) {
        return validation(res, "Invalid request.\n\nFor 'properties/permissions', is not an object.");
      }
      permissions = {};
      for (const [perm, level] of Object.entries(body.permissions)) {
        if (level !== "read" && level !== "write") {
          return validation(res, `Invalid request.\n\nFor 'properties/${perm}', "${String(level)}" is not a valid value.`);
        }
        const granted = INSTALLATION_PERMISSIONS[perm];
        if (!granted || (level === "write" && granted !== "write")) {
          return validation(res, "The permissions requested are not granted to this installation.");
        }
        permissions[perm] = level;
      }
      if (!permissions.metadata) permissions.metadata = "read";
    } else {
      permissions = { ...INSTALLATION_PERMISSIONS };
    }
    const token = `ghs_${crypto.randomBytes(27).toString("base64url").replace(/[-_]/g, "x").slice(0, 36)}`;
    const now = new Date();
    const expiresAt = new Date(Math.floor(now.getTime() / 1000) * 1000 + 3600_000).toISOString().replace(/\.\d{3}Z$/, "Z");
    tokens.push({
      token,
      installationId,
      repositories: names,
      permissions,
      expiresAt,
      revoked: false,
      fullNames,
      createdAt: now.toISOString(),
    });
    const resp: Record<string, unknown> = {
      token,
      expires_at: expiresAt,
      permissions,
      repository_selection: fullNames ? "selected" : "all",
    };
    if (fullNames) {
      resp.repositories = fullNames.map((f) => repoJson(getRepo(f.split("/")[0]!, f.split("/")[1]!)!));
    }
    return send(res, 201, resp);
  }

  async function createPull(res: http.ServerResponse, repo: RepoRec, body: any) {
    const missing = ["title", "head", "base"].filter((f) => typeof body[f] !== "string" || body[f].length === 0);
    if (missing.length) {
      return validation(
        res,
        "Validation Failed",
        missing.map((f) => ({ resource: "PullRequest", field: f, code: "missing_field" })),
      );
    }
    let head: string = body.head;
    const i = head.indexOf(":");
    if (i >= 0) {
      const owner = head.slice(0, i);
      if (owner.toLowerCase() !== repo.owner.toLowerCase()) {
        return validation(res, "Validation Failed", [{ resource: "PullRequest", field: "head", code: "invalid" }]);
      }
      head = head.slice(i + 1);
    }
    const base: string = body.base;
    const headSha = await headOf(repo, head);
    if (!headSha) return validation(res, "Validation Failed", [{ resource: "PullRequest", field: "head", code: "invalid" }]);
    const baseSha = await headOf(repo, base);
    if (!baseSha) return validation(res, "Validation Failed", [{ resource: "PullRequest", field: "base", code: "invalid" }]);
    const dup = pulls.find(
      (p) => key(p.owner, p.repo) === key(repo.owner, repo.name) && p.state === "open" && p.head === head && p.base === base,
    );
    if (dup) {
      return validation(res, "Validation Failed", [
        { resource: "PullRequest", code: "custom", message: `A pull request already exists for ${repo.owner}:${head}.` },
      ]);
    }
    const anc = await runGit(["--git-dir", repo.bareDir, "merge-base", "--is-ancestor", headSha, baseSha], { env: gitEnv });
    if (anc.code === 0) {
      return validation(res, "Validation Failed", [
        { resource: "PullRequest", code: "custom", message: `No commits between ${base} and ${head}` },
      ]);
    }
    const number = repo.nextNumber++;
    const now = new Date().toISOString();
    const p: FakePull = {
      owner: repo.owner,
      repo: repo.name,
      number,
      title: body.title,
      body: typeof body.body === "string" ? body.body : "",
      head,
      base,
      draft: body.draft === true,
      html_url: `${baseUrl}/${repo.owner}/${repo.name}/pull/${number}`,
      updates: 0,
      state: "open",
      id: nextPullId++,
      createdAt: now,
      updatedAt: now,
    };
    pulls.push(p);
    return send(res, 201, await pullJson(p));
  }

  // ---------- git smart HTTP ----------
  function gitText(res: http.ServerResponse, status: number, text: string, headers: Record<string, string> = {}) {
    if (res.headersSent) return;
    res.writeHead(status, { "content-type": "text/plain; charset=utf-8", ...headers });
    res.end(text.endsWith("\n") ? text : `${text}\n`);
  }

  async function handleGit(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    url: URL,
    owner: string,
    name: string,
    subPath: string,
    auth: ParsedAuth,
  ) {
    const service = subPath === "/info/refs" ? url.searchParams.get("service") : subPath.replace(/^\//, "");
    if (service !== "git-upload-pack" && service !== "git-receive-pack") {
      // GitHub does not serve the dumb protocol.
      return gitText(res, 404, "Not Found");
    }
    const challenge = { "www-authenticate": 'Basic realm="GitHub"' };
    if (!auth || auth.scheme !== "basic") return gitText(res, 401, "Authentication required", challenge);
    const grant = lookupToken(auth.token);
    if (!grant) return gitText(res, 401, "Invalid username or token.", challenge);
    const repo = getRepo(owner, name);
    if (!repo || !canSeeRepo(grant, repo)) return gitText(res, 404, "Repository not found.");
    const push = service === "git-receive-pack";
    if (!hasPerm(grant, "contents", push ? "write" : "read")) {
      return gitText(res, 403, `Permission to ${repo.owner}/${repo.name}.git denied to x-access-token.`);
    }

    const env: NodeJS.ProcessEnv = {
      ...gitEnv,
      GIT_PROJECT_ROOT: reposRoot,
      GIT_HTTP_EXPORT_ALL: "1",
      PATH_INFO: `/${repo.owner}/${repo.name}.git${subPath}`,
      REQUEST_METHOD: req.method ?? "GET",
      QUERY_STRING: url.search.replace(/^\?/, ""),
      CONTENT_TYPE: req.headers["content-type"] ?? "",
      REMOTE_USER: grant.kind === "installation" ? "x-access-token" : "personal-token",
      REMOTE_ADDR: req.socket.remoteAddress ?? "127.0.0.1",
    };
    const proto = req.headers["git-protocol"];
    if (typeof proto === "string") env.GIT_PROTOCOL = proto;

    const child = spawn("git", ["http-backend"], { env, stdio: ["pipe", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stdin.on("error", () => {});
    child.on("error", (e) => gitText(res, 500, `git http-backend failed: ${e.message}`));

    const enc = String(req.headers["content-encoding"] ?? "").toLowerCase();
    const input = enc === "gzip" || enc === "x-gzip" ? req.pipe(zlib.createGunzip()) : req;
    input.on("error", () => child.stdin.destroy());
    input.pipe(child.stdin);

    let head = Buffer.alloc(0);
    let headersDone = false;
    child.stdout.on("data", (chunk: Buffer) => {
      if (headersDone) {
        if (!res.write(chunk)) {
          child.stdout.pause();
          res.once("drain", () => child.stdout.resume());
        }
        return;
      }
      head = Buffer.concat([head, chunk]);
      let end = head.indexOf("\r\n\r\n");
      let sepLen = 4;
      const lf = head.indexOf("\n\n");
      if (lf >= 0 && (end < 0 || lf < end)) {
        end = lf;
        sepLen = 2;
      }
      if (end < 0) return;
      headersDone = true;
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of head.subarray(0, end).toString("latin1").split(/\r?\n/)) {
        const c = line.indexOf(":");
        if (c < 0) continue;
        const k = line.slice(0, c).trim();
        const v = line.slice(c + 1).trim();
        if (k.toLowerCase() === "status") status = parseInt(v, 10) || 200;
        else headers[k] = v;
      }
      res.writeHead(status, headers);
      const restBuf = head.subarray(end + sepLen);
      if (restBuf.length) res.write(restBuf);
    });
    child.on("close", (code) => {
      if (!headersDone) {
        return gitText(res, 500, `git http-backend exited ${code}: ${stderr}`);
      }
      res.end();
    });
    res.on("close", () => {
      if (child.exitCode === null) child.kill();
    });
  }

  // ---------- server ----------
  const server = http.createServer((req, res) => {
    const rawUrl = req.url ?? "/";
    const url = new URL(rawUrl, "http://fake.invalid");
    const auth = parseAuth(req.headers.authorization);
    const entry: FakeRequest = {
      method: req.method ?? "GET",
      path: rawUrl,
      auth: auth ? (auth.scheme === "jwt" ? "jwt" : auth.token) : undefined,
    };
    requests.push(entry);
    res.on("finish", () => (entry.status = res.statusCode));

    const isApi = url.pathname === "/api/v3" || url.pathname.startsWith("/api/v3/");
    const apiPath = isApi ? url.pathname.slice("/api/v3".length) || "/" : null;

    const f = failures.find(
      (x) => x.remaining > 0 && (url.pathname.startsWith(x.prefix) || (apiPath !== null && apiPath.startsWith(x.prefix))),
    );
    if (f) {
      f.remaining--;
      req.resume();
      const message =
        f.status >= 500 ? "Server Error" : f.status === 429 ? "API rate limit exceeded" : http.STATUS_CODES[f.status] ?? "Error";
      return error(res, f.status, message);
    }

    const done = (p: Promise<unknown>) =>
      p.catch((e: unknown) => {
        if (!res.headersSent) error(res, 500, `fake github internal error: ${(e as Error)?.stack ?? e}`);
        else res.destroy();
      });

    if (apiPath !== null) return void done(handleApi(req, res, apiPath, url, auth));
    const m = /^\/([^/]+)\/([^/]+?)(?:\.git)?(\/(?:info\/refs|git-upload-pack|git-receive-pack|HEAD|objects\/.*))$/.exec(
      url.pathname,
    );
    if (m) return void done(handleGit(req, res, url, decodeURIComponent(m[1]!), decodeURIComponent(m[2]!), m[3]!, auth));
    req.resume();
    gitText(res, 404, "Not Found");
  });

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  baseUrl = `http://127.0.0.1:${port}`;

  return {
    apiUrl: `${baseUrl}/api/v3`,
    gitBaseUrl: baseUrl,
    appId,
    appPrivateKey,
    installationId,
    tokens,
    pulls,
    comments,
    requests,
    createRepo,
    async branchHead(owner, repo, branch) {
      const r = getRepo(owner, repo);
      return r ? headOf(r, branch) : null;
    },
    async fileAt(owner, repo, ref, p) {
      const r = getRepo(owner, repo);
      if (!r) return null;
      const out = await runGit(["--git-dir", r.bareDir, "show", `${ref}:${p}`], { env: gitEnv });
      return out.code === 0 ? out.stdout.toString("utf8") : null;
    },
    addPersonalToken(token) {
      personal.add(token);
    },
    expireToken(token) {
      const t = tokens.find((x) => x.token === token);
      if (!t) throw new Error(`fake github: no minted token ${token.slice(0, 8)}…`);
      t.expiresAt = new Date(Date.now() - 1000).toISOString();
    },
    failNext(pathPrefix, n, status) {
      failures.push({ prefix: pathPrefix, remaining: n, status });
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await fs.rm(root, { recursive: true, force: true });
    },
  };
}
