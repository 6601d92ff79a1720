/** Data at rest: DATA_DIR is 0700 and everything under a given part of it (the embedded database) 0600 / 0700. */
import fs from "node:fs";
import path from "node:path";

/** Create DATA_DIR 0700 (or tighten it); with `sub`, tighten every file (0600) and folder (0700) below DATA_DIR/sub. */
export function restrictDataDir(dataDir: string, sub?: string): void {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  fs.chmodSync(dataDir, 0o700);
  if (!sub) return;
  const walk = (p: string) => {
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    if (!st || st.isSymbolicLink()) return;
    if (st.isDirectory()) {
      fs.chmodSync(p, 0o700);
      for (const e of fs.readdirSync(p)) walk(path.join(p, e));
    } else if (st.isFile()) fs.chmodSync(p, 0o600);
  };
  walk(path.join(dataDir, sub));
}
