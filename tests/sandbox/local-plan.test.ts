/** The pure decisions behind the hardened local sandbox (src/sandbox/local/plan.ts, probe.ts): no I/O. */
import { describe, expect, it } from "vitest";
import { bwrapArgs, channelSocketPath, enterArgv, insideEnv, limitVerdict } from "../../src/sandbox/local/plan.ts";
import { judgeProbe } from "../../src/sandbox/local/probe.ts";

const limits = { maxProcesses: 64, memoryBytes: 128 * 1048576, cpus: 1, diskBytes: 32 * 1048576 };
const fds = { workspace: 4, home: 5, control: 6, tmp: 7, opencode: 8, forwarder: 9, channel: 10 };
const host = { rootEntries: [{ path: "/bin", symlink: "usr/bin" }] };

describe("bubblewrap arguments", () => {
  it("new user and network namespaces, no capabilities, a new session, an empty environment, no host folder but the system's", () => {
    const a = bwrapArgs({ host, fds, network: "isolated", infoFd: 3 });
    for (const f of ["--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net", "--new-session", "--clearenv"]) expect(a).toContain(f);
    expect(a.join(" ")).toContain("--cap-drop ALL");
    // devpts would make bubblewrap nest a second user namespace the server could not enter.
    expect(a).not.toContain("--dev");
    expect(a.join(" ")).toContain("--ro-bind-fd 10 /run/deckhand");
    const binds = a.flatMap((x, i) => (x === "--bind" || x === "--ro-bind" ? [a[i + 1]] : []));
    expect(binds.sort()).toEqual(["/etc", "/usr"]);
  });
  it("host network only when asked", () => {
    expect(bwrapArgs({ host, fds, network: "host", infoFd: 3 })).not.toContain("--unshare-net");
    expect(bwrapArgs({ host, fds, network: "none", infoFd: 3 })).toContain("--unshare-net");
  });
});

describe("entering a sandbox", () => {
  it("a root server becomes the sandbox's uid, joins the user namespace first, drops privileges, applies limits", () => {
    const a = enterArgv({ initPid: 42, serverUid: 0, sandboxUid: 61000, network: "isolated", cgroupProcs: ["/sys/fs/cgroup/pids/deckhand/x/cgroup.procs"], limits, cwd: "/workspace", argv: ["id"], nice: false });
    const s = a.join(" ");
    expect(s).toContain("setpriv --reuid=61000 --regid=61000 --clear-groups");
    expect(s).toMatch(/nsenter --target 42 --user --preserve-credentials --mount --pid --ipc --uts --net/);
    expect(s).toContain("setpriv --no-new-privs --inh-caps=-all");
    expect(s).toContain(`--fsize=${32 * 1048576}`);
    expect(s).not.toContain("--nproc"); // the pids cgroup bounds processes per sandbox
    expect(a.at(-1)).toBe("id");
    expect(a.indexOf("setpriv")).toBeGreaterThan(a.indexOf("/sys/fs/cgroup/pids/deckhand/x/cgroup.procs"));
  });
  it("an ordinary server enters as itself; without cgroups the process count is an rlimit", () => {
    const a = enterArgv({ initPid: 42, serverUid: 1000, sandboxUid: 1000, network: "isolated", cgroupProcs: [], limits, cwd: "/workspace", argv: ["id"], nice: true });
    expect(a[0]).toBe("nsenter");
    expect(a.join(" ")).toContain("--nproc=64");
    expect(a).toContain("nice");
  });
  it("the environment is a fixed base plus the caller's variables", () => {
    expect(insideEnv("/home/deckhand", { A: "1" })).toEqual({ PATH: expect.any(String), HOME: "/home/deckhand", LANG: "C.UTF-8", TMPDIR: "/tmp", A: "1" });
  });
});

describe("limits and probes", () => {
  it("plain reasons for each breached limit", () => {
    expect(limitVerdict({ pidsMaxHits: 0, oomKills: 0, workspaceBytes: 10 }, limits)).toBeNull();
    expect(limitVerdict({ pidsMaxHits: 3, oomKills: 0, workspaceBytes: 0 }, limits)).toMatch(/more than 64 processes/);
    expect(limitVerdict({ pidsMaxHits: 0, oomKills: 1, workspaceBytes: 0 }, limits)).toMatch(/more than 128 MiB of memory/);
    expect(limitVerdict({ pidsMaxHits: 0, oomKills: 0, workspaceBytes: 33 * 1048576 }, limits)).toMatch(/past 32 MiB/);
  });
  it("the isolation probe passes only with empty capabilities, a non-root uid and no inherited environment", () => {
    expect(judgeProbe("CapEff:\t0000000000000000\nuid=61000\nenv:PATH=/usr/bin\n", "MARK_1").ok).toBe(true);
    expect(judgeProbe("CapEff:\t000001fffeffffff\nuid=0\n", "MARK_1").problems).toHaveLength(2);
    expect(judgeProbe("CapEff:\t0000000000000000\nuid=1000\nenv:MARK_1=1\n", "MARK_1").problems[0]).toMatch(/inherited/);
    expect(judgeProbe("", "MARK_1").ok).toBe(false);
  });
  it("the channel socket path fits in sun_path, else falls back to a short folder", () => {
    expect(channelSocketPath("/var/lib/deckhand", "abc")).toBe("/var/lib/deckhand/ch/backend.sock");
    const long = `/${"x".repeat(120)}`;
    expect(channelSocketPath(long, "abc")).toBe("/tmp/deckhand-abc/backend.sock");
  });
});
