/**
 * The hostile-agent suite end to end: the scripted model makes real OpenCode run the probe script with its
 * `bash` tool inside a real local sandbox, on a server whose secrets are each marked with a unique value. Every
 * probe must fail and the run must still end visibly (idle, with the model's last word).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ModelHandler } from "../fakes/model-server.ts";
import { findTool } from "../../src/sandbox/local/host.ts";
import { makeRepo, startTestServer, type TestServer } from "../helpers/harness.ts";
import { leaks, probeScript } from "../sandbox/probe-script.ts";

const bwrap = findTool("bwrap");
if (!bwrap) console.warn("SKIPPING the hostile-agent suite: bubblewrap is not installed");
const uniq = () => Math.random().toString(36).slice(2, 12);
const MARKS = {
  API_TOKEN: `api-${uniq()}-${uniq()}`,
  GITHUB_TOKEN: `ghp_${uniq()}${uniq()}`,
  SLACK_BOT_TOKEN: `xoxb-${uniq()}-${uniq()}`,
  LINEAR_WEBHOOK_SECRET: `lin-${uniq()}-${uniq()}`,
};

describe.skipIf(!bwrap)("a hostile agent driving real OpenCode in a local sandbox", () => {
  let srv: TestServer;
  let backendPort = 0;
  const handler: ModelHandler = (req) => {
    if (req.lastRole === "tool") return { text: "Probes finished." };
    return { toolCalls: [{ name: "bash", arguments: { command: probeScript({ marks: Object.values(MARKS), loopbackPorts: [backendPort, 5432], bigFileBytes: 600 * 1048576 }), description: "Probe the sandbox", timeout: 180_000 } }] };
  };

  beforeAll(async () => {
    // The server process's own environment holds secrets too (as in production): none may reach the sandbox.
    process.env.GITHUB_TOKEN = MARKS.GITHUB_TOKEN;
    process.env.SLACK_BOT_TOKEN = MARKS.SLACK_BOT_TOKEN;
    process.env.LINEAR_WEBHOOK_SECRET = MARKS.LINEAR_WEBHOOK_SECRET;
    srv = await startTestServer({ handler, repos: { demo: makeRepo().bare }, env: { API_TOKEN: MARKS.API_TOKEN, LOCAL_SANDBOX_DISK_MB: "512" } });
    backendPort = Number(new URL(srv.url).port);
  }, 240_000);
  afterAll(async () => {
    for (const k of ["GITHUB_TOKEN", "SLACK_BOT_TOKEN", "LINEAR_WEBHOOK_SECRET"]) delete process.env[k];
    await srv?.close();
  }, 120_000);

  it("every probe fails and the run still ends idle with the model's answer", async () => {
    const health = await srv.api("GET", "/healthz");
    expect(health.body.isolated).toBe(true);
    const created = await srv.api("POST", "/api/runs", { repo: "demo", prompt: "Probe your sandbox" });
    expect(created.status).toBe(201);
    const run = await srv.waitFor(created.body.id, ["idle", "failed", "cancelled"], 400_000);
    expect(run.status, run.reason).toBe("idle");
    expect(run.result.summary).toBe("Probes finished.");
    const out = srv.model.requests.flatMap((r) => r.toolResults.map((t) => t.content)).join("\n");
    expect(out).toContain("PROBES-DONE");
    expect(out).toMatch(/PROBE caps: ok/);
    // The channel answers, but only relay routes: /api/runs is not there.
    expect(out).toMatch(/PROBE channel-api: ok \(404\)/);
    expect(leaks(out), out).toEqual([]);
  }, 500_000);
});
