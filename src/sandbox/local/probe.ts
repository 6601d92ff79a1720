/**
 * "Refuse to pretend": before reporting isolation, start a real sandbox and look at it from the inside. It must
 * show an empty effective capability set, a uid other than 0, no environment inherited from the server in any
 * process, and (network isolated) no route to the host's loopback.
 */
import net from "node:net";
import type { LocalSandboxProvider } from "./local-provider.ts";

export interface ProbeResult {
  ok: boolean;
  problems: string[];
}

const PROBE = `
grep CapEff /proc/self/status
echo "uid=$(id -u)"
for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < "$f" 2>/dev/null; done | sed 's/^/env:/'
`;

/** Judge what the probe saw (pure). `marker` is an env var set only in the server's own process. */
export function judgeProbe(out: string, marker: string): ProbeResult {
  const problems: string[] = [];
  const cap = /CapEff:\s*([0-9a-f]+)/.exec(out)?.[1];
  if (cap === undefined || !/^0+$/.test(cap)) problems.push(`processes inside have capabilities (CapEff ${cap ?? "unknown"})`);
  if (/^uid=0$/m.test(out) || !/^uid=\d+$/m.test(out)) problems.push("processes inside run as uid 0");
  if (out.includes(marker)) problems.push("a process inside inherited the server's environment");
  return { ok: problems.length === 0, problems };
}

export async function probeIsolation(provider: LocalSandboxProvider, checkLoopbackPort?: number): Promise<ProbeResult> {
  const marker = `DECKHAND_PROBE_${Math.random().toString(36).slice(2)}`;
  process.env[marker] = "1";
  let sb;
  try {
    sb = await provider.create({ runId: "isolation-probe", labels: { deckhandProbe: "1" } });
    const r = await sb.exec(["/bin/sh", "-c", PROBE], { timeoutMs: 20_000 });
    const verdict = judgeProbe(r.stdout + r.stderr, marker);
    if (checkLoopbackPort) {
      const reach = await sb.exec(["/bin/bash", "-c", `exec 3<>/dev/tcp/127.0.0.1/${checkLoopbackPort} && echo REACHED`], { timeoutMs: 10_000 });
      if (reach.stdout.includes("REACHED")) verdict.problems.push(`the host's loopback (port ${checkLoopbackPort}) is reachable from inside`);
      verdict.ok = verdict.problems.length === 0;
    }
    return verdict;
  } catch (e) {
    return { ok: false, problems: [(e as Error).message] };
  } finally {
    delete process.env[marker];
    if (sb) await provider.destroy(sb.id).catch(() => {});
  }
}

/** A throwaway listener on the host's loopback, for the probe to try to reach. */
export async function loopbackListener(): Promise<{ port: number; close(): void }> {
  const srv = net.createServer((c) => c.destroy());
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  return { port: (srv.address() as net.AddressInfo).port, close: () => srv.close() };
}
