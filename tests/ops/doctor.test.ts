/**
 * `deckhand doctor` as a user runs it (a child process), against the test doubles: everything passing, then each
 * check failing with its fix and a non-zero exit. The dashboard's /doctor page shows the same checks when signed in.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeE2B, type FakeE2B } from "../fakes/e2b/index.ts";
import { startFakeGitHub, type FakeGitHub } from "../fakes/github.ts";
import { startFakeLinear, type FakeLinear } from "../fakes/linear.ts";
import { startModelServer, type ModelServer } from "../fakes/model-server.ts";
import { startFakeSlack, type FakeSlack } from "../fakes/slack.ts";
import { freePort, freshPostgres, postgresAvailable, startTestServer, tmpDir, type TestServer } from "../helpers/harness.ts";

const hasPg = await postgresAvailable();

const BIN = path.resolve(import.meta.dirname, "../../bin/deckhand.mjs");

function doctor(env: Record<string, string>, args: string[] = []): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, "doctor", ...args], { env: { PATH: process.env.PATH!, HOME: process.env.HOME!, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (c) => (out += c));
    child.stderr.on("data", (c) => (err += c));
    child.on("close", (code) => resolve({ code: code ?? 1, out, err }));
  });
}

describe.skipIf(!hasPg)("deckhand doctor", () => {
  let model: ModelServer;
  let slack: FakeSlack;
  let linear: FakeLinear;
  let github: FakeGitHub;
  let e2b: FakeE2B;
  let srv: TestServer;
  let good: Record<string, string>;
  let dbs: Awaited<ReturnType<typeof freshPostgres>>[] = [];

  beforeAll(async () => {
    [model, slack, linear, github, e2b] = await Promise.all([startModelServer(), startFakeSlack(), startFakeLinear(), startFakeGitHub(), startFakeE2B()]);
    dbs = [await freshPostgres(), await freshPostgres()];
    // The server migrates the first database; the second stays empty.
    srv = await startTestServer({ model, noReconciler: true, databaseUrl: dbs[0]!.url });
    good = {
      DATA_DIR: tmpDir(),
      DATABASE_URL: dbs[0]!.url,
      PUBLIC_URL: srv.url,
      LLM_BASE_URL: model.baseUrl,
      LLM_MODEL: "m",
      LLM_API_KEY: "test-key",
      SLACK_BOT_TOKEN: slack.token,
      SLACK_SIGNING_SECRET: "s",
      SLACK_API_URL: slack.apiUrl,
      LINEAR_ACCESS_TOKEN: linear.token,
      LINEAR_API_URL: linear.apiUrl,
      GITHUB_APP_ID: String(github.appId),
      GITHUB_APP_PRIVATE_KEY: github.appPrivateKey,
      GITHUB_API_URL: github.apiUrl,
      E2B_API_KEY: e2b.apiKey,
      E2B_API_URL: e2b.apiUrl,
    };
  }, 300_000);
  afterAll(async () => {
    await srv?.close();
    for (const d of dbs) await d.drop();
    await Promise.all([model?.close(), slack?.close(), linear?.close(), github?.close(), e2b?.close()]);
  });

  it("passes every check against working services, one line each, exit 0", async () => {
    const r = await doctor(good);
    expect(r.code, r.out + r.err).toBe(0);
    for (const name of ["bubblewrap", "sandbox network", "database", "model", "slack", "linear", "github", "e2b", "public url"]) expect(r.out).toMatch(new RegExp(`^✔ ${name} `, "m"));
    expect(r.out).toMatch(/All checks passed\./);
    expect(r.err).not.toMatch(/at .*\.ts:\d+/);
  }, 240_000);

  it("fails each check with its fix and exits 1", async () => {
    const r = await doctor({
      ...good,
      PATH: "/nonexistent", // no bwrap, no pasta/slirp4netns
      DATABASE_URL: `postgres://postgres@127.0.0.1:${await freePort()}/none`,
      LLM_API_KEY: "wrong",
      LLM_MODEL: "no-such-model",
      SLACK_BOT_TOKEN: "xoxb-wrong",
      LINEAR_ACCESS_TOKEN: "wrong",
      GITHUB_APP_ID: String(github.appId + 1),
      E2B_API_KEY: "wrong",
      PUBLIC_URL: `http://127.0.0.1:${await freePort()}`,
    });
    expect(r.code, r.out + r.err).toBe(1);
    const lines = r.out;
    for (const name of ["bubblewrap", "sandbox network", "database", "model", "slack", "linear", "github", "e2b", "public url"]) expect(lines).toMatch(new RegExp(`^✘ ${name} `, "m"));
    expect(lines).toMatch(/fix: apt-get install -y bubblewrap/);
    expect(lines).toMatch(/fix: check DATABASE_URL/);
    expect(lines).toMatch(/^✘ slack .*invalid_auth/m);
    expect(lines).toMatch(/fix: SLACK_BOT_TOKEN is wrong/);
    expect(lines).toMatch(/fix: LINEAR_ACCESS_TOKEN/);
    expect(lines).toMatch(/fix: check GITHUB_APP_ID/);
    expect(lines).toMatch(/fix: E2B_API_KEY is wrong/);
    expect(lines).toMatch(/fix: start the server/);
    expect(lines).toMatch(/9 checks failed\./);
  }, 240_000);

  it("--json gives the same checks as data; unconfigured services are skipped, not failed", async () => {
    const r = await doctor({ DATA_DIR: tmpDir(), DATABASE_URL: dbs[1]!.url, PUBLIC_URL: srv.url, LLM_BASE_URL: model.baseUrl, LLM_MODEL: "m" }, ["--json"]);
    expect(r.code, r.out + r.err).toBe(1);
    const checks = JSON.parse(r.out) as { name: string; status: string }[];
    expect(Object.fromEntries(checks.map((c) => [c.name, c.status]))).toMatchObject({ model: "ok", slack: "skip", linear: "skip", github: "skip", e2b: "skip" });
    // A new database has no migrations yet: a failure with the fix, never a stack trace.
    expect(checks.find((c) => c.name === "database")).toMatchObject({ status: "fail", fix: "run: deckhand migrate" });
  }, 240_000);

  it("the dashboard shows the checks to a signed-in admin only", async () => {
    const anon = await fetch(`${srv.url}/doctor`, { redirect: "manual" });
    expect(anon.status).toBe(303);
    const login = await fetch(`${srv.url}/login`, { method: "POST", redirect: "manual", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams({ token: srv.deckhand.apiToken }) });
    const cookie = login.headers.get("set-cookie")?.split(";")[0];
    expect(cookie).toBeTruthy();
    const page = await fetch(`${srv.url}/doctor`, { headers: { cookie: cookie! } });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain("Set-up checks");
    expect(html).toMatch(/data-check="model" data-status="ok"/);
    expect(html).toMatch(/data-check="database" data-status="ok"/);
  }, 120_000);
});
