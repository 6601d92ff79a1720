/**
 * A Bolt receiver on our Fastify server (Bolt's custom-receiver path: `init(app)`, then `app.processEvent` for
 * every verified request). `POST /slack/events` lives in its own encapsulated plugin, guarded by what it serves:
 *
 * 1. busy (the bounded inbound queue is full): 503 + retry-after before the body is read; Slack retries later;
 * 2. a stale or future `x-slack-request-timestamp`: 401 before the body is read;
 * 3. the body read raw (the signature is over the exact bytes), at most MAX_BODY_BYTES (413 past it);
 * 4. the v0 signature checked with the signing secret (Bolt's `verifySlackRequest`): 401 with the reason;
 * 5. parsed (guard.ts): Events API JSON, interactivity's `payload=` JSON, slash command fields; 400 otherwise;
 * 6. `url_verification` answered with its challenge, `ssl_check` with 200;
 * 7. `app.processEvent` with an `ack` that answers the HTTP request: 200, with the body a listener gave (a slash
 *    command's reply, a view_submission's `response_action`). Not acknowledged within `ackTimeoutMs` (Slack waits
 *    3 s): 504 and a log line; a late ack only logs. Done without any ack (no listener for it): 404 at once.
 *    `x-slack-retry-num` / `-reason` become the listeners' `context.retryNum` / `retryReason`.
 */
import type { App, Receiver, ReceiverEvent } from "@slack/bolt";
import { ReceiverMultipleAckError, verifySlackRequest } from "@slack/bolt";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Logger } from "../../log/logger.ts";
import { mediaType, parseSlackBody, retryOf, timestampProblem } from "./guard.ts";

export const EVENTS_PATH = "/slack/events";

export interface FastifyReceiverOptions {
  signingSecret: string;
  /** Largest body read (MAX_BODY_BYTES). */
  bodyLimit: number;
  log: Logger;
  /** True while new work cannot be queued: answered 503 with retry-after, nothing read. */
  busy?: () => boolean;
  /** How long a listener has to call ack() (default 3000 ms, Slack's own wait). */
  ackTimeoutMs?: number;
  /** Seconds Slack is asked to wait before retrying a 503 (default 30). */
  retryAfterSec?: number;
}

interface Answer {
  status: number;
  body?: unknown;
}

export class FastifyReceiver implements Receiver {
  private app: App | null = null;

  constructor(private readonly o: FastifyReceiverOptions) {}

  init(app: App): void {
    this.app = app;
  }

  /** Nothing to start: requests arrive through Deckhand's HTTP server (see `plugin`). */
  async start(): Promise<void> {}

  async stop(): Promise<void> {}

  /** The encapsulated Fastify plugin with `POST /slack/events` (register it on the server before it listens). */
  readonly plugin = async (f: FastifyInstance): Promise<void> => {
    // This plugin only: every body arrives as raw bytes (the signature is over them), bounded.
    f.removeAllContentTypeParsers();
    f.addContentTypeParser("*", { parseAs: "buffer", bodyLimit: this.o.bodyLimit }, (_req, body, done) => done(null, body));
    f.addHook("onRequest", async (req, reply) => {
      if (this.o.busy?.()) {
        req.raw.resume();
        return reply
          .code(503)
          .header("retry-after", String(this.o.retryAfterSec ?? 30))
          .send({ error: "busy, retry later" });
      }
      const stale = timestampProblem(req.headers);
      if (stale) return reply.code(stale.status).send({ error: stale.error });
    });
    f.post(EVENTS_PATH, async (req, reply) => this.handle(req, reply));
  };

  private async handle(req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const text = raw.toString("utf8");
    const type = req.headers["content-type"];
    // Slack's SSL check carries nothing to act on and needs no signature: answered, nothing else read.
    if (mediaType(type) === "application/x-www-form-urlencoded" && new URLSearchParams(text).get("ssl_check") === "1") return reply.code(200).send("");
    const signature = req.headers["x-slack-signature"];
    const timestamp = req.headers["x-slack-request-timestamp"];
    if (typeof signature !== "string" || typeof timestamp !== "string") return reply.code(401).send({ error: "missing x-slack-signature or x-slack-request-timestamp" });
    try {
      verifySlackRequest({ signingSecret: this.o.signingSecret, body: text, headers: { "x-slack-signature": signature, "x-slack-request-timestamp": Number(timestamp) } });
    } catch (e) {
      this.o.log.warn({ reason: (e as Error).message }, "refused a Slack request: bad signature");
      return reply.code(401).send({ error: (e as Error).message });
    }
    const parsed = parseSlackBody(type, text);
    if ("problem" in parsed) return reply.code(parsed.problem.status).send({ error: parsed.problem.error });
    const { body } = parsed;
    if (body.type === "url_verification") return reply.code(200).send({ challenge: typeof body.challenge === "string" ? body.challenge : "" });
    if (!this.app) return reply.code(503).send({ error: "Slack is not ready yet" });
    const answer = await this.dispatch(this.app, body, retryOf(req.headers));
    return send(reply, answer);
  }

  /** Hand one verified request to Bolt; resolves with the HTTP answer (the ack, a timeout, or no listener). */
  private dispatch(app: App, body: Record<string, unknown>, retry: { retryNum?: number; retryReason?: string }): Promise<Answer> {
    const log = this.o.log;
    const what = String(body.type ?? body.command ?? "request").slice(0, 60);
    return new Promise<Answer>((resolve) => {
      let answered = false;
      let acked = false;
      const answer = (a: Answer): boolean => {
        if (answered) return false;
        answered = true;
        clearTimeout(timer);
        resolve(a);
        return true;
      };
      const timer = setTimeout(() => {
        if (answer({ status: 504, body: { error: "not acknowledged in time" } })) log.error({ what }, `a Slack ${what} was not acknowledged within ${this.o.ackTimeoutMs ?? 3000} ms`);
      }, this.o.ackTimeoutMs ?? 3000);
      timer.unref();
      const event: ReceiverEvent = {
        body,
        ...retry,
        ack: async (response?: unknown) => {
          if (acked) throw new ReceiverMultipleAckError();
          acked = true;
          if (!answer({ status: 200, body: response })) log.warn({ what }, "a Slack request was acknowledged after Slack stopped waiting for it");
        },
      };
      app.processEvent(event).then(
        () => {
          if (!acked) answer({ status: 404, body: { error: `nothing here handles this ${what}` } });
        },
        (e: unknown) => {
          log.error({ err: (e as Error)?.message, what }, "Bolt failed to process a Slack request");
          if (!acked) answer({ status: 500, body: { error: "internal error" } });
        },
      );
    });
  }
}

/** An ack's body as Slack reads it: nothing, text, or JSON. */
function send(reply: FastifyReply, a: Answer): FastifyReply {
  reply.code(a.status);
  if (a.body === undefined || a.body === null || a.body === "") return reply.send("");
  if (typeof a.body === "string") return reply.type("text/plain; charset=utf-8").send(a.body);
  return reply.type("application/json; charset=utf-8").send(JSON.stringify(a.body));
}
