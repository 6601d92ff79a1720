/**
 * A hostile agent against a real local sandbox (real bubblewrap, pasta, cgroups or rlimits), at the provider
 * level: every probe must fail; a fork bomb and a memory hog stop the sandbox with a plain reason; the backend
 * refuses a symlinked or oversized file. (tests/e2e/hostile-agent.test.ts drives the same probes through OpenCode.)
 */
import { execFile } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cgroupSupport } from "../../src/sandbox/local/cgroups.ts";
import { LocalSandboxProvider } from "../../src/sandbox/local/local-provider.ts";
import { opencodeBinary } from "../../src/sandbox/index.ts";
import { findTool } from "../../src/sandbox/local/host.ts";
import { localSandboxRoot } from "../../src/sandbox/local/plan.ts";
import { tmpDir } from "../helpers/harness.ts";
import { leaks, probeScript } from "./probe-script.ts";

const bwrap = findTool("bwrap");
if (!bwrap) console.warn("SKIPPING hostile sandbox tests: bubblewrap is not installed");
const cg = cgroupSupport();

describe.skipIf(!bwrap)("a hostile agent in a local sandbox", () => {
  let provider: LocalSandboxProvider;
  let listener: net.Server;
  let port: number;
  const MARK = `SECRET_MARK_${Math.random().toString(36).slice(2)}`;

  beforeAll(async () => {
    process.env.DECKHAND_TEST_GITHUB_TOKEN = `ghp_${MARK}`;
    listener = net.createServer((c) => c.destroy());
    await new Promise<void>((r) => listener.listen(0, "127.0.0.1", r));
    port = (listener.address() as net.AddressInfo).port;
    const dataDir = tmpDir();
    fs.writeFileSync(path.join(dataDir, "secrets.env"), `TOKEN=${MARK}\n`, { mode: 0o644 });
    provider = new LocalSandboxProvider({
      dataDir,
      opencodeBin: opencodeBinary(),
      cgroups: cg,
      channelSocket: path.join(localSandboxRoot(dataDir, process.getuid?.() ?? 0), "ch", "backend.sock"),
      limits: { maxProcesses: 64, memoryBytes: 128 * 1048576, cpus: 1, diskBytes: 32 * 1048576 },
    });
  });
  afterAll(async () => {
    delete process.env.DECKHAND_TEST_GITHUB_TOKEN;
    for (const s of (await provider?.list()) ?? []) await provider.destroy(s.id);
    await provider?.close();
    listener?.close();
  });

  it("every probe fails: secrets, capabilities, mounts, system folders, host loopback, host processes, big files", async () => {
    const sb = await provider.create({ runId: "r1", labels: {} });
    const r = await sb.exec(["/bin/bash", "-c", probeScript({ marks: [MARK], loopbackPorts: [port, 5432], bigFileBytes: 40 * 1048576 })], { timeoutMs: 120_000 });
    expect(r.stdout).toContain("PROBES-DONE");
    expect(r.stdout).toMatch(/PROBE caps: ok/);
    expect(leaks(r.stdout), r.stdout).toEqual([]);
  }, 180_000);

  it.skipIf(process.getuid?.() !== 0)("the same probes fail when the server runs as an ordinary user", async () => {
    const dataDir = tmpDir();
    fs.chmodSync(dataDir, 0o755);
    fs.chownSync(dataDir, 65534, 65534);
    const tsx = path.resolve("node_modules/.bin/tsx");
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        "setpriv",
        ["--reuid=65534", "--regid=65534", "--clear-groups", "--", tsx, path.resolve("tests/sandbox/nonroot-probe.ts"), dataDir, Buffer.from(MARK).toString("base64"), String(port)],
        { env: { PATH: process.env.PATH!, HOME: dataDir, GITHUB_TOKEN: `ghp_${MARK}` }, cwd: dataDir, timeout: 420_000, maxBuffer: 1 << 20 },
        (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)),
      ),
    );
    expect(out).toContain("uid-outside=65534");
    expect(out).toContain("PROBES-DONE");
    expect(out).toMatch(/PROBE caps: ok/);
    expect(leaks(out), out).toEqual([]);
  }, 450_000);

  it("the backend refuses a symlinked or oversized file the agent left for it", async () => {
    const sb = await provider.create({ runId: "r2", labels: {} });
    await sb.exec(["ln", "-s", "/etc/passwd", "/deckhand/result.bundle"]);
    await expect(sb.readFile("/deckhand/result.bundle")).rejects.toMatchObject({ code: "bad_path" });
    await sb.exec(["/bin/sh", "-c", "mkdir /deckhand/d && ln -s /etc /deckhand/d/etc"]);
    await expect(sb.readFile("/deckhand/d/etc/hostname")).rejects.toMatchObject({ code: "bad_path" });
    await sb.exec(["/bin/sh", "-c", "head -c 2000 /dev/zero > /deckhand/huge"]);
    await expect(sb.readFile("/deckhand/huge", 1000)).rejects.toMatchObject({ code: "too_large" });
    expect((await sb.readFile("/deckhand/huge", 4000)).length).toBe(2000);
  }, 60_000);

  it.skipIf(!cg)("a fork bomb stops its sandbox with a plain reason; another sandbox carries on", async () => {
    const other = await provider.create({ runId: "r3", labels: {} });
    const sb = await provider.create({ runId: "r4", labels: {} });
    await sb.startBackground(["/bin/bash", "-c", "b() { b | b & }; b"], { logFile: "/deckhand/bomb.log" });
    const end = Date.now() + 60_000;
    while ((await provider.get(sb.id)) && Date.now() < end) await new Promise((r) => setTimeout(r, 500));
    expect(await provider.get(sb.id)).toBeNull();
    expect(await provider.endReason(sb.id)).toMatch(/more than 64 processes/);
    expect((await other.exec(["echo", "alive"])).stdout.trim()).toBe("alive");
  }, 90_000);

  it.skipIf(!cg)("a memory hog stops its sandbox with a plain reason", async () => {
    const sb = await provider.create({ runId: "r5", labels: {} });
    await sb.startBackground([process.execPath, "-e", "const a=[]; for(;;) a.push(Buffer.alloc(8<<20, 1))"], { logFile: "/deckhand/hog.log" });
    const end = Date.now() + 60_000;
    while ((await provider.get(sb.id)) && Date.now() < end) await new Promise((r) => setTimeout(r, 500));
    expect(await provider.endReason(sb.id)).toMatch(/more than 128 MiB of memory/);
  }, 90_000);
});
