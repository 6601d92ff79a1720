/**
 * Which clone URLs are GitHub repositories, and which ones. Pure.
 * `webOrigin` is where repositories live (https://github.com, or a GitHub Enterprise origin: see githubWebOrigin).
 */

export interface GitHubRepo {
  owner: string;
  repo: string;
}

/** `https://github.com/acme/api(.git)` → {owner: "acme", repo: "api"}; anything on another host → null. */
export function parseGitHubRepo(url: string, webOrigin: string): GitHubRepo | null {
  let u: URL;
  let origin: URL;
  try {
    u = new URL(url);
    origin = new URL(webOrigin);
  } catch {
    return null;
  }
  if (u.protocol !== origin.protocol || u.host.toLowerCase() !== origin.host.toLowerCase()) return null;
  const base = origin.pathname.replace(/\/+$/, "");
  if (base && !u.pathname.startsWith(`${base}/`)) return null;
  const parts = u.pathname.slice(base.length).split("/").filter(Boolean);
  if (parts.length !== 2) return null;
  const owner = decodeURIComponent(parts[0]!);
  const repo = decodeURIComponent(parts[1]!).replace(/\.git$/i, "");
  if (!/^[\w.-]+$/.test(owner) || !/^[\w.-]+$/.test(repo) || !repo) return null;
  return { owner, repo };
}

export const fullName = (r: GitHubRepo) => `${r.owner}/${r.repo}`;
