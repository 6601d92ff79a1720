/**
 * A guard in front of Bolt's HTTP receiver for what Bolt lets through: a request timestamp more than five minutes
 * in the future (Bolt only refuses old ones), and a signed body that is JSON but not an object (`null` makes Bolt
 * throw outside any handler: the request would hang), or an event callback whose `event` is not an object. The body is read once (bounded) and handed on to Bolt as
 * an equivalent request stream.
 */
import type http from "node:http";
import { Readable } from "node:stream";

const MAX_SKEW_SEC = 5 * 60;

/** Why to refuse the request (status and message), or null to pass it on. Pure. */
export function slackRequestProblem(headers: http.IncomingHttpHeaders, body: Buffer | null, nowSec = Math.floor(Date.now() / 1000)): { status: number; error: string } | null {
  const ts = Number(headers["x-slack-request-timestamp"]);
  if (headers["x-slack-request-timestamp"] !== undefined && (!Number.isFinite(ts) || Math.abs(nowSec - ts) > MAX_SKEW_SEC)) {
    return { status: 401, error: "request timestamp is too far from now" };
  }
  if (body && /^application\/json/i.test(String(headers["content-type"] ?? ""))) {
    try {
      const v = JSON.parse(body.toString("utf8"));
      if (!v || typeof v !== "object" || Array.isArray(v)) return { status: 400, error: "the body must be a JSON object" };
      // An event callback's `event` is read by Bolt and our handlers as an object with a string type.
      if (v.type === "event_callback") {
        const e = v.event;
        if (!e || typeof e !== "object" || Array.isArray(e)) return { status: 400, error: "event must be an object" };
        if (typeof e.type !== "string") return { status: 400, error: "event.type must be a string" };
      }
    } catch {
      return null; // Bolt answers malformed JSON itself (after checking the signature)
    }
  }
  return null;
}

/** Wraps Bolt's request listener with the guard; bodies over `limit` bytes get 413 without reaching Bolt. */
export function guardSlackRequests(next: (req: http.IncomingMessage, res: http.ServerResponse) => void, limit: number) {
  return (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const refuse = (status: number, error: string) => {
      if (!res.headersSent) res.writeHead(status, { "content-type": "application/json", connection: "close" }).end(JSON.stringify({ error }));
    };
    const early = slackRequestProblem(req.headers, null);
    if (early) return refuse(early.status, early.error);
    if (req.method !== "POST") return next(req, res);
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > limit) over = true;
      else chunks.push(c);
    });
    req.on("error", () => refuse(400, "request aborted"));
    req.on("end", () => {
      if (over) return refuse(413, `body over ${limit} bytes`);
      const body = Buffer.concat(chunks);
      const problem = slackRequestProblem(req.headers, body);
      if (problem) return refuse(problem.status, problem.error);
      // Bolt reads the body from the request stream: give it the same request with the bytes we read.
      const replay = Object.assign(Readable.from([body]), {
        headers: req.headers,
        method: req.method,
        url: req.url,
        httpVersion: req.httpVersion,
        socket: req.socket,
        connection: req.socket,
      }) as unknown as http.IncomingMessage;
      next(replay, res);
    });
  };
}
