/** Picks the sandbox provider from the configuration. */
import { createRequire } from "node:module";
import path from "node:path";
import type { Config } from "../config/config.ts";
import type { Logger } from "../log/logger.ts";
import { createE2BProvider } from "./e2b/e2b-provider.ts";
import { bwrapWorks, findBwrap, LocalSandboxProvider } from "./local/local-provider.ts";
import type { SandboxProvider } from "./provider.ts";

/** The opencode binary shipped by the opencode-ai package for this platform. */
export function opencodeBinary(config?: Pick<Config, "OPENCODE_BIN">): string {
  if (config?.OPENCODE_BIN) return config.OPENCODE_BIN;
  const require = createRequire(import.meta.url);
  const arch = process.arch === "x64" ? "x64" : process.arch;
  for (const pkg of [`opencode-${process.platform}-${arch}`, `opencode-${process.platform}-${arch}-baseline`]) {
    try {
      return path.join(path.dirname(require.resolve(`${pkg}/package.json`)), "bin", "opencode");
    } catch {
      /* next */
    }
  }
  throw new Error("the opencode binary was not found: run `npm ci` (package opencode-ai) or set OPENCODE_BIN");
}

export async function createSandboxProvider(config: Config, log: Logger): Promise<SandboxProvider> {
  if (config.SANDBOX_PROVIDER === "e2b") return createE2BProvider(config, log);
  const bwrap = findBwrap();
  const works = bwrap ? bwrapWorks(bwrap) : { ok: false, error: "bwrap is not installed" };
  if (!works.ok) {
    if (config.LOCAL_SANDBOX_REQUIRE_ISOLATION) throw new Error(`LOCAL_SANDBOX_REQUIRE_ISOLATION is set but bubblewrap cannot run: ${works.error}`);
    log.warn(
      { reason: works.error },
      "RUNS ARE NOT ISOLATED: bubblewrap is unavailable, so the agent runs with this server's user and file system. Install it (Debian/Ubuntu: `apt-get install -y bubblewrap`) and restart.",
    );
  }
  return new LocalSandboxProvider({ dataDir: config.DATA_DIR, opencodeBin: opencodeBinary(config), isolate: works.ok });
}
