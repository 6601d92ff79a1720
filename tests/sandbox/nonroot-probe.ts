/**
 * Child program of hostile-sandbox.test.ts: started as an ordinary user (setpriv --reuid), it builds the local
 * provider exactly as the server does (isolation probe included) and runs the probe script in a sandbox.
 * argv: dataDir marksBase64 loopbackPort. Prints the probe output, or "NOT-ISOLATED" when the provider refuses.
 */
import { loadConfig } from "../../src/config/config.ts";
import { createLogger } from "../../src/log/logger.ts";
import { createSandboxProvider } from "../../src/sandbox/index.ts";
import { probeScript } from "./probe-script.ts";

const [dataDir, marksB64, port] = process.argv.slice(2) as [string, string, string];
const marks = Buffer.from(marksB64, "base64").toString().split("\n").filter(Boolean);
const config = loadConfig({ DATA_DIR: dataDir, LLM_BASE_URL: "http://127.0.0.1:9/v1", LLM_MODEL: "m", LOCAL_SANDBOX_DISK_MB: "32" });
const provider = await createSandboxProvider(config, createLogger({ level: "error" }));
if (!provider.isolated) {
  console.log("NOT-ISOLATED");
  process.exit(0);
}
const sb = await provider.create({ runId: "nonroot", labels: {} });
const r = await sb.exec(["/bin/bash", "-c", probeScript({ marks, loopbackPorts: [Number(port)], bigFileBytes: 40 * 1048576 })], { timeoutMs: 150_000 });
console.log(`uid-outside=${process.getuid?.()}`);
console.log(r.stdout);
await provider.destroy(sb.id);
await provider.close?.();
process.exit(0);
