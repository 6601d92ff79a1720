/**
 * `deckhand doctor` (and the dashboard's /doctor page): is everything Deckhand needs in place? One line per check,
 * with the fix. Each check is bounded by a timeout; a check that is not configured is skipped, not failed.
 */
import { spawnSync } from "node:child_process";
import type { Config } from "../config/config.ts";
import type { Database } from "../db/database.ts";

export interface CheckResult {
  name: string;
  status: "ok" | "fail" | "skip";
  detail: string;
  /** What to do about a failure. */
  fix?: string;
}

const TIMEOUT_MS = 8000;

async function timed<T>(p: Promise<T>, ms = TIMEOUT_MS): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error(`no answer in ${ms / 1000} s`)), ms)))]);
  } finally {
    clearTimeout(t);
  }
}

const errText = (e: unknown) => {
  const err = e as Error & { cause?: { message?: string } };
  return (err.cause?.message ? `${err.message} (${err.cause.message})` : err.message ?? String(e)).split("\n")[0]!.slice(0, 300);
};

async function getJson(url: string, headers: Record<string, string>): Promise<{ status: number; body: any }> {
  const res = await timed(fetch(url, { headers, signal: AbortSignal.timeout(TIMEOUT_MS) }));
  const text = await res.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, body };
}

function onPath(bin: string): string | null {
  const r = spawnSync("sh", ["-c", `command -v ${bin}`], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : null;
}

export function checkSandboxTools(c: Config, which: (bin: string) => string | null = onPath): CheckResult[] {
  if (c.SANDBOX_PROVIDER !== "local") return [{ name: "bubblewrap", status: "skip", detail: `sandboxes run on ${c.SANDBOX_PROVIDER}` }];
  const out: CheckResult[] = [];
  const bwrap = which("bwrap");
  if (!bwrap) out.push({ name: "bubblewrap", status: "fail", detail: "bwrap not found: local sandboxes would run unisolated", fix: "apt-get install -y bubblewrap (in a container: see README, Run with Docker)" });
  else {
    const r = spawnSync(bwrap, ["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--unshare-pid", "--", "/bin/true"], { encoding: "utf8", timeout: TIMEOUT_MS });
    out.push(
      r.status === 0
        ? { name: "bubblewrap", status: "ok", detail: bwrap }
        : { name: "bubblewrap", status: "fail", detail: `${bwrap} cannot create a sandbox: ${(r.stderr || r.error?.message || "").trim().slice(0, 200)}`, fix: "allow user namespaces (sysctl kernel.unprivileged_userns_clone=1), or in a container add the capabilities in compose.yaml; or use SANDBOX_PROVIDER=e2b" },
    );
  }
  const net = which("pasta");
  out.push(net ? { name: "sandbox network", status: "ok", detail: net } : { name: "sandbox network", status: "fail", detail: "pasta not found (local sandboxes get their own network through it)", fix: "apt-get install -y passt (or LOCAL_SANDBOX_NETWORK=none)" });
  return out;
}

export async function checkDatabase(c: Config, live?: Database): Promise<CheckResult> {
  const { openDatabase } = await import("../db/database.ts");
  const { checkReady } = await import("./health.ts");
  try {
    // The server's own connection when there is one (an embedded database cannot be opened twice).
    // Opening the embedded database loads it into memory: slow on a busy machine.
    const db = live ?? (await timed(openDatabase({ url: c.DATABASE_URL, dataDir: c.DATA_DIR, poolSize: 1 }), c.DATABASE_URL ? TIMEOUT_MS : 60_000));
    try {
      const r = await checkReady(db, { draining: false, starting: false }, TIMEOUT_MS);
      if (r.checks.database !== "ok") return { name: "database", status: "fail", detail: r.checks.database, fix: "check DATABASE_URL and that Postgres is running" };
      if (r.checks.migrations !== "ok") return { name: "database", status: "fail", detail: `migrations: ${r.checks.migrations}`, fix: "run: deckhand migrate" };
      return { name: "database", status: "ok", detail: `${db.kind}, migrations applied` };
    } finally {
      if (!live) await db.close().catch(() => {});
    }
  } catch (e) {
    return { name: "database", status: "fail", detail: errText(e), fix: c.DATABASE_URL ? "check DATABASE_URL and that Postgres is running" : `check that ${c.DATA_DIR} is writable and no other server holds the embedded database` };
  }
}

export async function checkModel(c: Config): Promise<CheckResult> {
  if (!c.model) return { name: "model", status: "fail", detail: "no model configured", fix: "set LLM_BASE_URL + LLM_MODEL, or MODEL with its provider's API key" };
  const oc = c.model.openaiCompatible;
  if (!oc) return { name: "model", status: "ok", detail: `${c.model.id} (key set; the provider is checked at the first run)` };
  try {
    const r = await getJson(`${oc.baseURL.replace(/\/+$/, "")}/models`, { authorization: `Bearer ${oc.apiKey}` });
    if (r.status === 401 || r.status === 403) return { name: "model", status: "fail", detail: `${oc.baseURL} refused the key (${r.status})`, fix: "check LLM_API_KEY" };
    if (r.status >= 400) return { name: "model", status: "fail", detail: `${oc.baseURL}/models answered ${r.status}`, fix: "check LLM_BASE_URL (an OpenAI-compatible endpoint, usually ending in /v1)" };
    const ids: string[] = Array.isArray(r.body?.data) ? r.body.data.map((m: { id?: unknown }) => String(m.id)) : [];
    if (ids.length && !ids.includes(oc.model)) return { name: "model", status: "fail", detail: `${oc.baseURL} does not serve "${oc.model}" (it has: ${ids.slice(0, 5).join(", ")})`, fix: "check LLM_MODEL" };
    return { name: "model", status: "ok", detail: `${oc.model} at ${oc.baseURL}` };
  } catch (e) {
    return { name: "model", status: "fail", detail: `cannot reach ${oc.baseURL}: ${errText(e)}`, fix: "check LLM_BASE_URL and that the model server is running" };
  }
}

export async function checkSlack(c: Config): Promise<CheckResult> {
  if (!c.SLACK_BOT_TOKEN) return { name: "slack", status: "skip", detail: "not configured" };
  try {
    const { WebClient } = await import("@slack/web-api");
    const client = new WebClient(c.SLACK_BOT_TOKEN, { ...(c.SLACK_API_URL ? { slackApiUrl: c.SLACK_API_URL.replace(/\/*$/, "/") } : {}), retryConfig: { retries: 0 }, rejectRateLimitedCalls: true });
    const r = await timed(client.auth.test());
    return { name: "slack", status: "ok", detail: `auth.test: bot ${r.user ?? r.user_id} in ${r.team ?? r.team_id}` };
  } catch (e) {
    const code = (e as { data?: { error?: string } }).data?.error;
    return { name: "slack", status: "fail", detail: `auth.test failed: ${code ?? errText(e)}`, fix: code === "invalid_auth" || code === "not_authed" ? "SLACK_BOT_TOKEN is wrong or revoked: copy the Bot User OAuth Token again (docs/slack.md)" : "check SLACK_API_URL / network access to slack.com" };
  }
}

export async function checkLinear(c: Config): Promise<CheckResult> {
  const auth = c.LINEAR_ACCESS_TOKEN ? { accessToken: c.LINEAR_ACCESS_TOKEN } : c.LINEAR_API_KEY ? { apiKey: c.LINEAR_API_KEY } : null;
  if (!auth) return { name: "linear", status: "skip", detail: c.LINEAR_CLIENT_ID ? "OAuth installs only (tokens are per workspace)" : "not configured" };
  try {
    const { LinearClient } = await import("@linear/sdk");
    const client = new LinearClient({ ...auth, ...(c.LINEAR_API_URL ? { apiUrl: c.LINEAR_API_URL } : {}) });
    const v = await timed(client.viewer);
    return { name: "linear", status: "ok", detail: `viewer: ${v.name} (${v.id})` };
  } catch (e) {
    return { name: "linear", status: "fail", detail: `viewer query failed: ${errText(e)}`, fix: "LINEAR_ACCESS_TOKEN / LINEAR_API_KEY is wrong or revoked: create a new one (docs/linear.md)" };
  }
}

export async function checkGitHub(c: Config): Promise<CheckResult> {
  const api = (c.GITHUB_API_URL ?? "https://api.github.com").replace(/\/+$/, "");
  try {
    if (c.GITHUB_APP_ID && c.GITHUB_APP_PRIVATE_KEY) {
      const { createAppAuth } = await import("@octokit/auth-app");
      const { token } = await createAppAuth({ appId: c.GITHUB_APP_ID, privateKey: c.GITHUB_APP_PRIVATE_KEY.replace(/\\n/g, "\n") })({ type: "app" });
      const r = await getJson(`${api}/app`, { authorization: `Bearer ${token}`, accept: "application/vnd.github+json" });
      if (r.status !== 200) return { name: "github", status: "fail", detail: `GET /app answered ${r.status}: ${r.body?.message ?? ""}`, fix: "check GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY (the app's .pem)" };
      return { name: "github", status: "ok", detail: `GitHub App ${r.body?.slug ?? r.body?.name ?? c.GITHUB_APP_ID}` };
    }
    if (c.GITHUB_TOKEN) {
      const r = await getJson(`${api}/rate_limit`, { authorization: `Bearer ${c.GITHUB_TOKEN}`, accept: "application/vnd.github+json" });
      if (r.status !== 200) return { name: "github", status: "fail", detail: `the token was refused (${r.status})`, fix: "GITHUB_TOKEN is wrong or expired: create a new one (docs/github.md)" };
      return { name: "github", status: "ok", detail: "personal token accepted" };
    }
    return { name: "github", status: "skip", detail: "not configured (branches are pushed only to local or token-less remotes)" };
  } catch (e) {
    return { name: "github", status: "fail", detail: errText(e), fix: "check GITHUB_API_URL, the private key's format and network access" };
  }
}

export async function checkE2B(c: Config): Promise<CheckResult> {
  if (!c.E2B_API_KEY) return { name: "e2b", status: c.SANDBOX_PROVIDER === "e2b" ? "fail" : "skip", detail: "no E2B_API_KEY", fix: "set E2B_API_KEY (e2b.dev dashboard)" };
  const api = (c.E2B_API_URL ?? `https://api.${c.E2B_DOMAIN ?? "e2b.app"}`).replace(/\/+$/, "");
  try {
    const r = await getJson(`${api}/v2/sandboxes`, { "x-api-key": c.E2B_API_KEY });
    if (r.status === 401 || r.status === 403) return { name: "e2b", status: "fail", detail: `the key was refused (${r.status})`, fix: "E2B_API_KEY is wrong: copy it again from the e2b.dev dashboard" };
    if (r.status >= 400) return { name: "e2b", status: "fail", detail: `${api} answered ${r.status}`, fix: "check E2B_API_URL / E2B_DOMAIN" };
    return { name: "e2b", status: "ok", detail: `key accepted (${Array.isArray(r.body) ? r.body.length : 0} sandboxes running)` };
  } catch (e) {
    return { name: "e2b", status: "fail", detail: `cannot reach ${api}: ${errText(e)}`, fix: "check network access to E2B" };
  }
}

export async function checkPublicUrl(c: Config): Promise<CheckResult> {
  try {
    const r = await getJson(`${c.PUBLIC_URL}/livez`, {});
    if (r.status === 200 && r.body?.ok === true) return { name: "public url", status: "ok", detail: `${c.PUBLIC_URL} answers` };
    return { name: "public url", status: "fail", detail: `${c.PUBLIC_URL}/livez answered ${r.status}, not Deckhand`, fix: "PUBLIC_URL must point at this Deckhand (check the proxy in front of it)" };
  } catch (e) {
    return { name: "public url", status: "fail", detail: `${c.PUBLIC_URL} is not reachable: ${errText(e)}`, fix: c.SANDBOX_PROVIDER === "e2b" ? "start the server; with E2B, PUBLIC_URL must be reachable from the internet" : "start the server (deckhand serve) and check PUBLIC_URL" };
  }
}

/** Every check, in a fixed order. */
export async function runDoctor(c: Config, live?: Database): Promise<CheckResult[]> {
  const [db, ...rest] = await Promise.all([checkDatabase(c, live), checkModel(c), checkSlack(c), checkLinear(c), checkGitHub(c), checkE2B(c), checkPublicUrl(c)]);
  return [...checkSandboxTools(c), db!, ...rest];
}

/** Pure: one line per check, with the fix under a failure, and a last line with the verdict. */
export function formatDoctor(results: CheckResult[]): string {
  const mark = { ok: "✔", fail: "✘", skip: "–" } as const;
  const w = Math.max(...results.map((r) => r.name.length));
  const lines = results.map((r) => `${mark[r.status]} ${r.name.padEnd(w)}  ${r.detail}${r.status === "fail" && r.fix ? `\n  ${" ".repeat(w)}  fix: ${r.fix}` : ""}`);
  const failed = results.filter((r) => r.status === "fail").length;
  lines.push(failed ? `${failed} check${failed > 1 ? "s" : ""} failed.` : "All checks passed.");
  return lines.join("\n");
}
