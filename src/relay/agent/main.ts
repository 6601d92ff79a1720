/**
 * Entry point of the in-sandbox relay (bundled to one file by build.ts, run with `node relay.mjs`).
 * Configuration comes from the environment (RelayEnv in ../protocol.ts). Exit code 0: the run is over or a
 * shutdown command was applied; 1: configuration error or an unexpected crash.
 */
import { configFromEnv } from "./config.ts";
import { errMsg, log } from "./log.ts";
import { pidAlive } from "./opencode.ts";
import { Relay } from "./relay.ts";
import { takeRelayLock } from "./state.ts";

async function main(): Promise<number> {
  let relay: Relay;
  try {
    const config = configFromEnv(process.env);
    takeRelayLock(config.stateDir, (pid) => pidAlive(pid).alive);
    relay = new Relay(config);
  } catch (err) {
    log("error", "relay cannot start", { error: errMsg(err) });
    return 1;
  }
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    process.once(sig, () => {
      log("info", "signal received", { signal: sig });
      void relay.stopNow(sig);
    });
  }
  const exit = await relay.run();
  return exit.code;
}

process.on("uncaughtException", (err) => {
  log("error", "uncaught exception", { error: errMsg(err), stack: err.stack });
  process.exit(1);
});
process.on("unhandledRejection", (err) => {
  log("error", "unhandled rejection", { error: errMsg(err) });
});

main().then(
  (code) => process.exit(code),
  (err) => {
    log("error", "relay crashed", { error: errMsg(err) });
    process.exit(1);
  },
);
