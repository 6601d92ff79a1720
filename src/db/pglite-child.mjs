// The embedded database's own process: PGlite served over the Postgres wire protocol on a Unix socket, so its
// query work never runs on the server's event loop. Started by src/db/pglite-process.ts (fork, IPC channel);
// plain JavaScript so it starts without a TypeScript loader.
//
//   argv: <pglite data dir> <socket path>
//   IPC out: {ready: true} once the socket accepts connections, {error: string} if start-up failed.
//   Ends when the parent asks ({stop: true}), when the IPC channel closes (the parent died, even by kill -9), or on
//   SIGTERM/SIGINT: the socket server stops and PGlite is closed cleanly (its files flushed).
import fs from "node:fs";
import path from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

const [dir, socketPath] = process.argv.slice(2);
const send = (msg) => {
  try {
    if (process.connected) process.send(msg);
  } catch {
    /* the parent is gone */
  }
};

// PGlite is one process per directory: a second one (another server, or `deckhand migrate` while one runs) would
// corrupt it and take over its socket. A lock file beside the directory names the holder; a dead holder's is stale.
const lockFile = dir ? path.join(path.dirname(path.resolve(dir)), "pglite.lock") : "";
let locked = false;
function holder(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    if (stat.slice(stat.lastIndexOf(")") + 2)[0] === "Z") return false;
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("pglite-child");
  } catch {
    return false;
  }
}
function takeLock() {
  for (let i = 0; i < 3; i++) {
    try {
      fs.writeFileSync(lockFile, String(process.pid), { flag: "wx", mode: 0o600 });
      locked = true;
      return;
    } catch (e) {
      if (e.code !== "EEXIST") throw e;
      const pid = Number(fs.readFileSync(lockFile, "utf8").trim());
      if (pid && pid !== process.pid && holder(pid)) {
        throw new Error(`${dir} is in use by process ${pid} (another Deckhand server or \`deckhand migrate\` on the same DATA_DIR)`);
      }
      fs.rmSync(lockFile, { force: true });
    }
  }
  throw new Error(`could not lock ${dir}`);
}

let pg = null;
let server = null;
let stopping = null;
function stop(code) {
  stopping ??= (async () => {
    // Hard stop if closing hangs: never outlive the server by more than a few seconds.
    setTimeout(() => process.exit(code || 1), 5000).unref();
    await server?.stop().catch(() => {});
    await pg?.close().catch(() => {});
    try {
      if (locked) {
        fs.rmSync(socketPath, { force: true });
        fs.rmSync(lockFile, { force: true });
      }
    } catch {
      /* already gone */
    }
    process.exit(code);
  })();
  return stopping;
}

process.on("disconnect", () => void stop(0));
process.on("SIGTERM", () => void stop(0));
process.on("SIGINT", () => void stop(0));
process.on("message", (m) => {
  if (m && typeof m === "object" && m.stop) void stop(0);
});

try {
  if (!dir || !socketPath) throw new Error("usage: pglite-child.mjs <data dir> <socket path>");
  fs.mkdirSync(dir, { recursive: true });
  takeLock();
  fs.rmSync(socketPath, { force: true }); // a socket file left by a killed predecessor
  pg = await PGlite.create(dir);
  // One client connection at a time: pglite-socket multiplexes several connections message by message, which would
  // interleave two clients' extended-protocol messages and their NOTIFY deliveries in PGlite's single session. The
  // parent's postgres.js pool has max 1; the spare slot only covers a reconnect racing the old socket's close.
  server = new PGLiteSocketServer({ db: pg, path: socketPath, maxConnections: 2 });
  const old = process.umask(0o077); // the socket file is the only door and carries no password: owner only
  try {
    await server.start();
  } finally {
    process.umask(old);
  }
  fs.chmodSync(socketPath, 0o600);
  send({ ready: true });
} catch (e) {
  send({ error: e instanceof Error ? e.message : String(e) });
  await stop(1);
}
