/**
 * The embedded database's process, seen from the server: starts src/db/pglite-child.mjs (PGlite behind
 * @electric-sql/pglite-socket on a Unix socket under DATA_DIR), waits until it accepts connections, reports an
 * unexpected exit loudly and starts it again with capped exponential backoff, and stops it on close.
 * The child also ends by itself when the server dies (its IPC channel closes), so it never outlives the server.
 */
import { type ChildProcess, fork } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), "pglite-child.mjs");
// A new data directory runs initdb inside WebAssembly: tens of seconds on a busy 2-core machine.
const START_TIMEOUT_MS = 300_000;
/** Unix socket paths are limited to 107 bytes; a long DATA_DIR gets its socket in the temp dir instead. */
const MAX_SOCKET_PATH = 100;

export interface PgliteProcess {
  /** Path of the Unix socket that speaks the Postgres wire protocol. */
  socketPath: string;
  pid(): number | undefined;
  /** Called after the child was started again following a crash (LISTENs must be re-issued). */
  onRestart(fn: () => void): void;
  stop(): Promise<void>;
}

export function restartDelayMs(attempt: number): number {
  return Math.min(30_000, 500 * 2 ** Math.min(attempt, 10));
}

function socketPathFor(dataDir: string): string {
  const inDir = path.resolve(dataDir, "pglite.sock");
  if (Buffer.byteLength(inDir) <= MAX_SOCKET_PATH) return inDir;
  return path.join(os.tmpdir(), `deckhand-pglite-${crypto.randomBytes(6).toString("hex")}.sock`);
}

function startChild(dir: string, socketPath: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    // execArgv: [] — the child is plain JavaScript; the parent's loader flags (tsx, vitest) do not apply to it.
    const child = fork(CHILD, [dir, socketPath], { execArgv: [], stdio: ["ignore", "inherit", "inherit", "ipc"] });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`the embedded database did not start within ${START_TIMEOUT_MS / 1000} s`));
    }, START_TIMEOUT_MS);
    const onExit = (code: number | null, signal: string | null) => {
      clearTimeout(timer);
      reject(new Error(`the embedded database process exited during start-up (code ${code}, signal ${signal})`));
    };
    child.once("exit", onExit);
    child.on("message", (m: { ready?: boolean; error?: string }) => {
      if (m?.ready) {
        clearTimeout(timer);
        child.off("exit", onExit);
        resolve(child);
      } else if (m?.error) {
        clearTimeout(timer);
        child.off("exit", onExit);
        child.kill("SIGKILL");
        reject(new Error(`the embedded database could not start: ${m.error}`));
      }
    });
  });
}

export async function startPgliteProcess(dataDir: string, log?: Logger): Promise<PgliteProcess> {
  const dir = path.join(dataDir, "pglite");
  const socketPath = socketPathFor(dataDir);
  let child = await startChild(dir, socketPath);
  let stopped = false;
  let attempt = 0;
  let timer: NodeJS.Timeout | undefined;
  const restartListeners: (() => void)[] = [];

  const watch = (c: ChildProcess) => {
    c.once("exit", (code, signal) => {
      if (stopped) return;
      const delay = restartDelayMs(attempt++);
      log?.error(
        { component: "database", pid: c.pid, code, signal, restartInMs: delay },
        `the embedded database process (PGlite) exited unexpectedly (code ${code}, signal ${signal}); database calls fail until it is back`,
      );
      const again = () => {
        timer = undefined;
        if (stopped) return;
        startChild(dir, socketPath).then(
          (next) => {
            if (stopped) return void next.kill("SIGTERM");
            child = next;
            log?.warn({ component: "database", pid: next.pid, attempt }, "the embedded database process is running again");
            watch(next);
            for (const fn of restartListeners) fn();
          },
          (err: Error) => {
            const d = restartDelayMs(attempt++);
            log?.error({ component: "database", err: err.message, restartInMs: d }, "the embedded database process could not be started again");
            timer = setTimeout(again, d);
          },
        );
      };
      timer = setTimeout(again, delay);
    });
  };
  watch(child);

  return {
    socketPath,
    pid: () => child.pid,
    onRestart: (fn) => void restartListeners.push(fn),
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      const c = child;
      if (c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise<void>((r) => c.once("exit", () => r()));
      if (c.connected) c.send({ stop: true });
      else c.kill("SIGTERM");
      const hard = setTimeout(() => c.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(hard);
      fs.rmSync(socketPath, { force: true });
    },
  };
}
