/**
 * How the backend touches files a hostile agent controls: regular files only, opened without following a
 * symlink at any step below the sandbox's folder, with a size cap; and command output read with a cap.
 */
import { spawn, type SpawnOptions } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { SandboxError } from "../provider.ts";

/** Largest file the backend reads out of a sandbox (result bundles, logs, patches) unless told otherwise. */
export const DEFAULT_READ_CAP = 256 * 1024 * 1024;
/** Output of one command kept per stream; the rest is dropped and marked. */
export const EXEC_OUTPUT_CAP = 4 * 1024 * 1024;

/**
 * Check that every directory from `base` down to the file's parent is a real directory (no symlink), then open
 * the file itself with O_NOFOLLOW. `base` is a folder the agent cannot replace (the host side of a bind mount).
 */
async function checkParents(base: string, file: string): Promise<void> {
  const rel = path.relative(base, path.dirname(file));
  if (rel.startsWith("..") || path.isAbsolute(rel)) throw new SandboxError(`${file} is outside the sandbox`, "bad_path");
  let cur = base;
  for (const part of rel.split(path.sep).filter(Boolean)) {
    cur = path.join(cur, part);
    const st = await fsp.lstat(cur).catch(() => null);
    if (!st) throw new SandboxError(`${file} does not exist`, "not_found");
    if (!st.isDirectory()) throw new SandboxError(`${file}: a folder on its path is a link or not a folder`, "bad_path");
  }
}

export async function readRegularFile(base: string, file: string, maxBytes = DEFAULT_READ_CAP): Promise<Buffer> {
  await checkParents(base, file);
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ELOOP") throw new SandboxError(`${file} is a symbolic link: refused`, "bad_path");
    if (code === "ENOENT") throw new SandboxError(`${file} does not exist`, "not_found");
    throw new SandboxError(`cannot open ${file}: ${code ?? (e as Error).message}`, "bad_path");
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new SandboxError(`${file} is not a regular file: refused`, "bad_path");
    if (st.size > maxBytes) throw new SandboxError(`${file} is ${st.size} bytes, over the ${maxBytes}-byte limit`, "too_large");
    const buf = Buffer.alloc(st.size);
    let off = 0;
    while (off < st.size) {
      const { bytesRead } = await fh.read(buf, off, st.size - off, off);
      if (bytesRead === 0) break;
      off += bytesRead;
    }
    return buf.subarray(0, off);
  } finally {
    await fh.close();
  }
}

/** Write a file for the sandbox without following a link the agent may have planted there. */
export async function writeRegularFile(base: string, file: string, data: string | Buffer, mode = 0o644, owner?: number): Promise<void> {
  await checkParents(base, path.join(path.dirname(file), "x")).catch(async (e) => {
    if ((e as SandboxError).code !== "not_found") throw e;
  });
  await fsp.mkdir(path.dirname(file), { recursive: true });
  await checkParents(base, file);
  const fh = await fsp.open(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_NOFOLLOW, mode);
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new SandboxError(`${file} is not a regular file: refused`, "bad_path");
    await fh.writeFile(data);
    await fh.chmod(mode);
    if (owner !== undefined) await fh.chown(owner, owner);
  } finally {
    await fh.close();
  }
}

/** Keeps the first `cap` bytes of a stream and counts the rest. */
export class CappedBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  dropped = 0;
  constructor(private readonly cap = EXEC_OUTPUT_CAP) {}
  push(c: Buffer): void {
    const room = this.cap - this.size;
    if (room <= 0) {
      this.dropped += c.length;
      return;
    }
    const part = c.length > room ? c.subarray(0, room) : c;
    this.chunks.push(part);
    this.size += part.length;
    this.dropped += c.length - part.length;
  }
  toString(): string {
    const s = Buffer.concat(this.chunks).toString();
    return this.dropped ? `${s}\n[… ${this.dropped} more bytes of output dropped]` : s;
  }
}

/** spawn → exit code and capped stdout/stderr. */
export function runCapped(cmd: string, args: string[], opts: SpawnOptions, cap = EXEC_OUTPUT_CAP): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...opts, stdio: ["ignore", "pipe", "pipe"] });
    const out = new CappedBuffer(cap);
    const err = new CappedBuffer(cap);
    child.stdout!.on("data", (c: Buffer) => out.push(c));
    child.stderr!.on("data", (c: Buffer) => err.push(c));
    child.on("error", (e) => reject(new SandboxError(`exec failed: ${e.message}`, "exec_failed")));
    child.on("close", (code, signal) => resolve({ exitCode: code ?? (signal ? 137 : 1), stdout: out.toString(), stderr: err.toString() }));
  });
}
