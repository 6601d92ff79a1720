// Preloaded into a benchmarked server (NODE_OPTIONS="--import <this file>", BENCH_ELD_FILE=<path>): measures the
// server's event-loop delay with monitorEventLoopDelay. On SIGUSR2 it writes the figures since the previous signal
// (milliseconds) to BENCH_ELD_FILE and starts a new window. Not loaded in production; product code is untouched.
import fs from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";

const file = process.env.BENCH_ELD_FILE;
if (file && !process.send) {
  // (process.send is set in forked children such as the embedded database: they are not the server.)
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  let window = 0;
  process.on("SIGUSR2", () => {
    const ms = (ns) => Math.round((ns / 1e6) * 10) / 10;
    const out = { window: ++window, p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max), mean: ms(h.mean) };
    h.reset();
    fs.writeFileSync(file, JSON.stringify(out));
  });
}
