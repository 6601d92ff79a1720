/**
 * `POST /linear/webhook`: verify the signature and the timestamp window over the raw body (LinearWebhookClient),
 * drop duplicates (the `linear-delivery` id and what the delivery is about, in `deliveries`), answer 200 at once
 * and do the work in the background (Linear wants an answer within 5 s). An encapsulated Fastify plugin: the body
 * arrives as raw bytes (bounded), whatever its content type.
 */
import { LinearWebhookClient } from "@linear/sdk/webhooks";
import type { FastifyInstance, FastifyReply } from "fastify";
import type { BoundedWork } from "../bounded-work.ts";
import { claimDelivery } from "./claim-delivery.ts";
import type { LinearDeps } from "./deps.ts";
import { linearPayloadProblem } from "./payload-shape.ts";
import { routeWebhook } from "./route-webhook.ts";

export const WEBHOOK_PATH = "/linear/webhook";
const MAX_BODY = 5 * 1024 * 1024;

function text(reply: FastifyReply, status: number, body: string): FastifyReply {
  return reply.code(status).type("text/plain; charset=utf-8").send(body);
}

export function linearWebhookRoutes(deps: LinearDeps, secret: string, track: (p: Promise<unknown>) => void, work?: BoundedWork) {
  const verifier = new LinearWebhookClient(secret);
  const log = deps.log.child({ component: "linear-webhook" });
  return async (f: FastifyInstance): Promise<void> => {
    f.removeAllContentTypeParsers();
    f.addContentTypeParser("*", { parseAs: "buffer", bodyLimit: MAX_BODY }, (_req, body, done) => done(null, body));
    f.get(WEBHOOK_PATH, async (_req, reply) => text(reply, 405, "Method not allowed"));
    f.post(WEBHOOK_PATH, async (req, reply) => {
      const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const signature = req.headers["linear-signature"];
      if (typeof signature !== "string" || !signature) return text(reply, 400, "Missing webhook signature");
      let payload: any;
      try {
        payload = verifier.parseData(raw, signature);
      } catch (e) {
        log.warn({ reason: (e as Error).message }, "rejected a Linear webhook");
        return text(reply, 400, "Invalid webhook");
      }
      const problem = linearPayloadProblem(payload);
      if (problem) {
        log.warn({ problem }, "refused a malformed Linear webhook");
        return text(reply, 400, `Invalid webhook: ${problem}`);
      }
      const delivery = typeof req.headers["linear-delivery"] === "string" ? req.headers["linear-delivery"] : null;
      const routed = await routeWebhook(deps, payload);
      if (!routed) return text(reply, 200, "Ignored");
      // Too much waiting already: Linear retries a 503 later; nothing is stored.
      if (work?.full()) return text(reply, 503, "Busy, retry later");
      const keys = [...(delivery ? [`linear:delivery:${delivery}`] : []), ...routed.keys];
      if (!(await claimDelivery(deps.db, keys))) {
        log.info({ delivery, what: routed.what }, "duplicate Linear delivery ignored");
        return text(reply, 200, "Duplicate");
      }
      const job = () => routed.work().catch((e) => log.error({ err: e, delivery, what: routed.what }, "handling a Linear webhook failed"));
      if (!work) track(job());
      else {
        track(
          new Promise<void>((done) => {
            if (!work.push(() => job().finally(done))) {
              log.error({ delivery, what: routed.what }, "Linear webhook dropped: the inbound queue is full");
              done();
            }
          }),
        );
      }
      return text(reply, 200, "OK");
    });
  };
}
