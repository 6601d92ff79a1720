// The fake in-sandbox daemon (envd 0.5.7): Connect RPC in JSON over HTTP/1.1 for process.Process and
// filesystem.Filesystem, REST for /files and /health. One handler serves every sandbox; the caller
// resolves the sandbox from the `E2b-Sandbox-Id` header.
import { createHash } from "node:crypto";
import { lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, writeFileSync, type Stats } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { posix } from "node:path";
import type { FakeSandbox, Proc, ProcEvent } from "./sandbox.ts";
import { ConnectStream, END_STREAM_FLAG, RpcError, decodeFirstEnvelope, envelope, parseJson, readBody, sendApiError, sendEmpty, sendJson, sendRpcError } from "./wire.ts";

const SIGNALS: Record<string, NodeJS.Signals> = { SIGNAL_SIGKILL: "SIGKILL", SIGNAL_SIGTERM: "SIGTERM", "9": "SIGKILL", "15": "SIGTERM" };

/** `Authorization: Basic base64("<user>:")` as sent by the SDK's `user` option. */
function userFrom(req: IncomingMessage): string | undefined {
  const h = req.headers.authorization;
  if (!h?.startsWith("Basic ")) return undefined;
  const user = Buffer.from(h.slice(6), "base64").toString("utf8").split(":")[0];
  return user || undefined;
}

function b64(buf: Buffer): string {
  return buf.toString("base64");
}

function permString(st: Stats): string {
  const t = st.isDirectory() ? "d" : st.isSymbolicLink() ? "L" : "-";
  const bits = "rwxrwxrwx";
  let s = "";
  for (let i = 0; i < 9; i++) s += st.mode & (1 << (8 - i)) ? bits[i] : "-";
  return t + s;
}

function entryInfo(sb: FakeSandbox, hostPath: string) {
  const lst = lstatSync(hostPath);
  let st = lst;
  let symlinkTarget: string | undefined;
  if (lst.isSymbolicLink()) {
    try {
      symlinkTarget = sb.toSandbox(posix.resolve(posix.dirname(hostPath), readlinkSync(hostPath)));
      st = statSync(hostPath);
    } catch {
      /* dangling link */
    }
  }
  const type = lst.isSymbolicLink() ? "FILE_TYPE_SYMLINK" : st.isDirectory() ? "FILE_TYPE_DIRECTORY" : "FILE_TYPE_FILE";
  return {
    name: posix.basename(hostPath) || "/",
    type,
    path: sb.toSandbox(hostPath),
    size: String(st.size),
    mode: st.mode & 0o777,
    permissions: permString(lst),
    owner: "user",
    group: "user",
    modifiedTime: st.mtime.toISOString(),
    ...(symlinkTarget !== undefined ? { symlinkTarget } : {}),
  };
}

function exists(hostPath: string): boolean {
  try {
    lstatSync(hostPath);
    return true;
  } catch {
    return false;
  }
}

function notFound(sb: FakeSandbox, hostPath: string): RpcError {
  return new RpcError("not_found", `path '${sb.toSandbox(hostPath)}' does not exist`);
}

// ------------------------------------------------------------------ process.Process

function procInfo(sb: FakeSandbox, p: Proc) {
  return {
    config: { cmd: p.config.cmd, args: p.config.args, envs: p.config.envs, ...(p.config.cwd ? { cwd: p.config.cwd } : {}) },
    pid: p.pid,
    ...(p.tag ? { tag: p.tag } : {}),
  };
}

function toWireEvent(ev: ProcEvent) {
  if (ev.kind === "data") return { event: { data: { [ev.stream]: b64(ev.data) } } };
  return { event: { end: { exitCode: ev.exitCode, exited: ev.exited, status: ev.status, ...(ev.error ? { error: ev.error } : {}) } } };
}

/** Streams a process's events (start, data, end, keepalives) until it ends or the client goes away. */
function streamProc(sb: FakeSandbox, req: IncomingMessage, res: ServerResponse, proc: Proc): void {
  const stream = new ConnectStream(res);
  sb.openResponses.add(res);
  stream.send({ event: { start: { pid: proc.pid } } });
  const intervalSec = Number(req.headers["keepalive-ping-interval"] ?? 0);
  const keepalive = intervalSec > 0 ? setInterval(() => stream.send({ event: { keepalive: {} } }), intervalSec * 1000) : undefined;
  const cleanup = () => {
    sb.openResponses.delete(res);
    if (keepalive) clearInterval(keepalive);
    proc.off("event", onEvent);
  };
  const onEvent = (ev: ProcEvent) => {
    stream.send(toWireEvent(ev));
    if (ev.kind === "end") {
      cleanup();
      stream.end();
    }
  };
  proc.on("event", onEvent);
  // The client giving up (disconnect, its own deadline) does not stop the process: same as envd.
  res.on("close", cleanup);
  if (proc.ended && proc.endEvent) onEvent(proc.endEvent);
}

async function processRpc(method: string, sb: FakeSandbox, req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<void> {
  const user = userFrom(req);
  if (method === "Start") {
    const msg = decodeFirstEnvelope(body);
    if (msg.pty) throw new RpcError("unimplemented", "the E2B fake does not support PTYs");
    const cfg = msg.process ?? {};
    if (!cfg.cmd) throw new RpcError("invalid_argument", "process.cmd is required");
    const config = { cmd: String(cfg.cmd), args: (cfg.args ?? []).map(String), envs: cfg.envs ?? {}, cwd: cfg.cwd };
    if (config.cwd) {
      const hostCwd = sb.toHost(config.cwd, user);
      if (!exists(hostCwd)) throw new RpcError("invalid_argument", `cwd '${config.cwd}' does not exist`);
    }
    let proc: Proc;
    try {
      proc = sb.start(config, { tag: msg.tag, stdin: msg.stdin === true, user });
    } catch (e) {
      throw new RpcError("internal", `error starting process: ${(e as Error).message}`);
    }
    return streamProc(sb, req, res, proc);
  }
  if (method === "Connect") {
    const msg = decodeFirstEnvelope(body);
    const proc = sb.findProc(msg.process);
    if (!proc) throw new RpcError("not_found", `process with pid ${msg.process?.pid ?? msg.process?.tag} not found`);
    return streamProc(sb, req, res, proc);
  }
  const msg = parseJson(body);
  if (msg === undefined) throw new RpcError("invalid_argument", "request body is not JSON");
  switch (method) {
    case "List":
      return sendJson(res, 200, { processes: [...sb.procs.values()].map((p) => procInfo(sb, p)) });
    case "SendSignal": {
      const proc = sb.findProc(msg.process);
      if (!proc) throw new RpcError("not_found", `process with pid ${msg.process?.pid} not found`);
      const sig = SIGNALS[String(msg.signal)];
      if (!sig) throw new RpcError("invalid_argument", `invalid signal: ${msg.signal}`);
      // the whole process group: the command and everything it started
      try {
        process.kill(-proc.pid, sig);
      } catch {
        try {
          process.kill(proc.pid, sig);
        } catch {
          /* already gone */
        }
      }
      return sendJson(res, 200, {});
    }
    case "SendInput": {
      const proc = sb.findProc(msg.process);
      if (!proc) throw new RpcError("not_found", `process with pid ${msg.process?.pid} not found`);
      if (msg.input?.pty) throw new RpcError("unimplemented", "the E2B fake does not support PTYs");
      if (!proc.stdinOpen || !proc.child.stdin || proc.child.stdin.writableEnded) throw new RpcError("failed_precondition", "stdin is not enabled for this process");
      proc.child.stdin.write(Buffer.from(msg.input?.stdin ?? "", "base64"));
      return sendJson(res, 200, {});
    }
    case "CloseStdin": {
      const proc = sb.findProc(msg.process);
      if (!proc) throw new RpcError("not_found", `process with pid ${msg.process?.pid} not found`);
      proc.child.stdin?.end();
      return sendJson(res, 200, {});
    }
    case "Update":
    case "StreamInput":
      throw new RpcError("unimplemented", `process.Process/${method} is not supported by the E2B fake`);
    default:
      throw new RpcError("unimplemented", `unknown method process.Process/${method}`);
  }
}

// ------------------------------------------------------------------ filesystem.Filesystem

function listDir(sb: FakeSandbox, hostDir: string, depth: number, out: unknown[]): void {
  for (const name of readdirSync(hostDir).sort()) {
    const p = posix.join(hostDir, name);
    let info;
    try {
      info = entryInfo(sb, p);
    } catch {
      continue;
    }
    out.push(info);
    if (depth > 1 && info.type === "FILE_TYPE_DIRECTORY") listDir(sb, p, depth - 1, out);
  }
}

function filesystemRpc(method: string, sb: FakeSandbox, req: IncomingMessage, res: ServerResponse, body: Buffer): void {
  const user = userFrom(req);
  const msg = parseJson(body);
  if (msg === undefined) throw new RpcError("invalid_argument", "request body is not JSON");
  switch (method) {
    case "Stat": {
      const p = sb.toHost(msg.path, user);
      if (!exists(p)) throw notFound(sb, p);
      return sendJson(res, 200, { entry: entryInfo(sb, p) });
    }
    case "ListDir": {
      const p = sb.toHost(msg.path, user);
      if (!exists(p)) throw notFound(sb, p);
      if (!statSync(p).isDirectory()) throw new RpcError("invalid_argument", `path '${sb.toSandbox(p)}' is not a directory`);
      const entries: unknown[] = [];
      listDir(sb, p, Math.max(1, Number(msg.depth ?? 1)), entries);
      return sendJson(res, 200, { entries });
    }
    case "MakeDir": {
      const p = sb.toHost(msg.path, user);
      if (exists(p)) {
        if (statSync(p).isDirectory()) throw new RpcError("already_exists", `directory '${sb.toSandbox(p)}' already exists`);
        throw new RpcError("invalid_argument", `path '${sb.toSandbox(p)}' already exists and is not a directory`);
      }
      mkdirSync(p, { recursive: true });
      return sendJson(res, 200, { entry: entryInfo(sb, p) });
    }
    case "Remove": {
      const p = sb.toHost(msg.path, user);
      if (p === sb.dir) throw new RpcError("permission_denied", "refusing to remove the sandbox root");
      rmSync(p, { recursive: true, force: true });
      return sendJson(res, 200, {});
    }
    case "Move": {
      const src = sb.toHost(msg.source, user);
      const dst = sb.toHost(msg.destination, user);
      if (!exists(src)) throw notFound(sb, src);
      mkdirSync(posix.dirname(dst), { recursive: true });
      renameSync(src, dst);
      return sendJson(res, 200, { entry: entryInfo(sb, dst) });
    }
    default:
      throw new RpcError("unimplemented", `filesystem.Filesystem/${method} is not supported by the E2B fake`);
  }
}

// ------------------------------------------------------------------ /files

function signatureOk(sb: FakeSandbox, url: URL, operation: "read" | "write"): boolean {
  const sig = url.searchParams.get("signature");
  if (!sig) return false;
  const path = url.searchParams.get("path") ?? "";
  const user = url.searchParams.get("username") ?? "";
  const exp = url.searchParams.get("signature_expiration");
  if (exp && Number(exp) < Date.now() / 1000) return false;
  const raw = exp ? `${path}:${operation}:${user}:${sb.envdAccessToken}:${exp}` : `${path}:${operation}:${user}:${sb.envdAccessToken}`;
  const expected = "v1_" + createHash("sha256").update(raw).digest("base64").replace(/=+$/, "");
  return sig === expected;
}

async function files(sb: FakeSandbox, req: IncomingMessage, res: ServerResponse, url: URL, authed: boolean): Promise<void> {
  const user = url.searchParams.get("username") ?? userFrom(req);
  const queryPath = url.searchParams.get("path") ?? undefined;
  if (req.method === "GET") {
    if (!authed && !signatureOk(sb, url, "read")) return sendApiError(res, 401, "unauthorized access, please provide a valid access token or method signing if supported");
    const p = sb.toHost(queryPath, user ?? undefined);
    if (!exists(p)) return sendApiError(res, 404, `path '${sb.toSandbox(p)}' does not exist`);
    if (statSync(p).isDirectory()) return sendApiError(res, 400, `path '${sb.toSandbox(p)}' is a directory`);
    const data = readFileSync(p);
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(data.length) });
    return void res.end(data);
  }
  if (req.method === "POST") {
    if (!authed && !signatureOk(sb, url, "write")) return sendApiError(res, 401, "unauthorized access, please provide a valid access token or method signing if supported");
    const body = await readBody(req);
    const ct = req.headers["content-type"] ?? "";
    const written: { name: string; type: "file"; path: string }[] = [];
    const write = (sandboxPath: string | undefined, data: Buffer) => {
      if (!sandboxPath) throw new Error("missing path");
      const p = sb.toHost(sandboxPath, user ?? undefined);
      if (exists(p) && statSync(p).isDirectory()) throw new Error(`path '${sb.toSandbox(p)}' is a directory`);
      mkdirSync(posix.dirname(p), { recursive: true });
      writeFileSync(p, data);
      written.push({ name: posix.basename(p), type: "file", path: sb.toSandbox(p) });
    };
    try {
      if (ct.startsWith("multipart/form-data")) {
        const form = await new Response(new Uint8Array(body), { headers: { "content-type": ct } }).formData();
        const parts = form.getAll("file");
        for (const part of parts) {
          if (typeof part === "string") continue;
          // one file: the query path wins; several files: each part's filename is its path
          write(parts.length === 1 && queryPath ? queryPath : part.name || queryPath, Buffer.from(await part.arrayBuffer()));
        }
      } else {
        write(queryPath, body);
      }
    } catch (e) {
      return sendApiError(res, 400, (e as Error).message);
    }
    if (written.length === 0) return sendApiError(res, 400, "no file in the request");
    return sendJson(res, 200, written);
  }
  return sendApiError(res, 405, "method not allowed");
}

// ------------------------------------------------------------------ entry

/** Serves one envd request for a running sandbox. */
export async function handleEnvd(sb: FakeSandbox, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const path = url.pathname;
  if (path === "/health") return sendEmpty(res, 204);
  const authed = req.headers["x-access-token"] === sb.envdAccessToken;
  if (path === "/files") return files(sb, req, res, url, authed);
  if (path === "/metrics") return sendJson(res, 200, { ts: Math.floor(Date.now() / 1000), cpu_count: 2, cpu_used_pct: 0, mem_total: 512 << 20, mem_used: 0 });
  if (path === "/envs") return sendJson(res, 200, sb.envVars);

  const m = /^\/(process\.Process|filesystem\.Filesystem)\/(\w+)$/.exec(path);
  if (!m || req.method !== "POST") return sendApiError(res, 404, `no route for ${req.method} ${path}`);
  const body = await readBody(req);
  try {
    if (!authed) throw new RpcError("unauthenticated", "unauthorized access, please provide a valid access token");
    if (m[1] === "process.Process") await processRpc(m[2], sb, req, res, body);
    else filesystemRpc(m[2], sb, req, res, body);
  } catch (e) {
    const err = e instanceof RpcError ? e : new RpcError("internal", (e as Error).message);
    if (res.headersSent) {
      // error after a stream started: end-of-stream envelope carrying the error
      if (!res.writableEnded) res.end(envelope(END_STREAM_FLAG, { error: { code: err.code, message: err.message } }));
    } else sendRpcError(res, err);
  }
}
