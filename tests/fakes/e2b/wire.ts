// Wire helpers shared by the fake E2B control plane and the fake envd:
// plain HTTP JSON answers, request bodies, and the Connect protocol (JSON codec)
// as spoken by @connectrpc/connect-web 2.x, which the `e2b` SDK uses.
import type { IncomingMessage, ServerResponse } from "node:http";
import { gunzipSync } from "node:zlib";

export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const raw = Buffer.concat(chunks);
  if ((req.headers["content-encoding"] ?? "").toLowerCase() === "gzip") return gunzipSync(raw);
  return raw;
}

export function parseJson(buf: Buffer): any {
  if (buf.length === 0) return {};
  try {
    return JSON.parse(buf.toString("utf8"));
  } catch {
    return undefined;
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const data = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { "content-type": "application/json", "content-length": String(data.length), ...headers });
  res.end(data);
}

export function sendEmpty(res: ServerResponse, status: number): void {
  res.writeHead(status, { "content-length": "0" });
  res.end();
}

/** E2B's REST error shape: `{"code":<status>,"message":"..."}`. */
export function sendApiError(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  sendJson(res, status, { code: status, message }, headers);
}

// ---------------------------------------------------------------- Connect protocol

/** Connect error codes (string form on the wire) and their HTTP statuses for unary errors. */
export const CONNECT_STATUS: Record<string, number> = {
  canceled: 499,
  unknown: 500,
  invalid_argument: 400,
  deadline_exceeded: 504,
  not_found: 404,
  already_exists: 409,
  permission_denied: 403,
  resource_exhausted: 429,
  failed_precondition: 400,
  aborted: 409,
  out_of_range: 400,
  unimplemented: 501,
  internal: 500,
  unavailable: 503,
  data_loss: 500,
  unauthenticated: 401,
};

export class RpcError extends Error {
  constructor(
    readonly code: keyof typeof CONNECT_STATUS,
    message: string,
  ) {
    super(message);
  }
}

/** A Connect envelope: 1 flag byte, 4-byte big-endian length, payload. */
export function envelope(flags: number, payload: unknown): Buffer {
  const data = Buffer.from(JSON.stringify(payload));
  const out = Buffer.alloc(5 + data.length);
  out[0] = flags;
  out.writeUInt32BE(data.length, 1);
  data.copy(out, 5);
  return out;
}

export const END_STREAM_FLAG = 0x02;

/** First enveloped message of a server-streaming request body. */
export function decodeFirstEnvelope(buf: Buffer): any {
  if (buf.length < 5) throw new RpcError("invalid_argument", "missing request envelope");
  const len = buf.readUInt32BE(1);
  if ((buf[0] & 0x01) === 0x01) throw new RpcError("internal", "compressed request envelopes are not supported");
  const payload = buf.subarray(5, 5 + len);
  const msg = parseJson(payload);
  if (msg === undefined) throw new RpcError("invalid_argument", "request envelope is not JSON");
  return msg;
}

/** Unary Connect error: HTTP status from the code, JSON body `{code, message}`. */
export function sendRpcError(res: ServerResponse, err: RpcError): void {
  sendJson(res, CONNECT_STATUS[err.code] ?? 500, { code: err.code, message: err.message });
}

/** An open server stream (`application/connect+json`). */
export class ConnectStream {
  private ended = false;
  constructor(private readonly res: ServerResponse) {
    res.writeHead(200, { "content-type": "application/connect+json" });
    res.flushHeaders();
  }
  get closed(): boolean {
    return this.ended || this.res.destroyed || this.res.writableEnded;
  }
  send(msg: unknown): void {
    if (this.closed) return;
    this.res.write(envelope(0, msg));
  }
  /** End-of-stream envelope (flag 0x02) holding `{}` or `{"error":{code,message}}`. */
  end(err?: RpcError): void {
    if (this.closed) return;
    this.ended = true;
    this.res.end(envelope(END_STREAM_FLAG, err ? { error: { code: err.code, message: err.message } } : {}));
  }
}
