// The embedded database's own process: PGlite served over the Postgres wire protocol on a Unix socket, so its
// query work never runs on the server's event loop. Started by src/db/pglite-process.ts (fork, IPC channel);
// plain JavaScript so it starts without a TypeScript loader.
//
//   argv: <pglite data dir> <socket path>
//   IPC out: {ready: true} once the socket accepts connections, {error: string} if start-up failed.
//   Ends when the parent asks ({stop: true}), when the IPC channel closes (the parent died, even by kill -9), or on
//   SIGTERM/SIGINT: the socket server stops and PGlite is closed cleanly (its files flushed).
import fs from "node:fs";
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
      fs.rmSync(socketPath, { force: true });
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
