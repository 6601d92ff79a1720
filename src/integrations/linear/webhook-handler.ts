/**
 * `POST /linear/webhook`: verify the signature and the timestamp window over the raw body (LinearWebhookClient),
 * drop duplicates (the `linear-delivery` id and what the delivery is about, in `deliveries`), answer 200 at once
 * and do the work in the background (Linear wants an answer within 5 s).
 */
import type http from "node:http";
import { LinearWebhookClient } from "@linear/sdk/webhooks";
import type { RawHandler } from "../../app.ts";
import type { BoundedWork } from "../bounded-work.ts";
import { claimDelivery } from "./claim-delivery.ts";
import type { LinearDeps } from "./deps.ts";
import { BodyTooLarge, readRawBody } from "./read-raw-body.ts";
import { linearPayloadProblem } from "./payload-shape.ts";
import { routeWebhook } from "./route-webhook.ts";

const MAX_BODY = 5 * 1024 * 1024;

function reply(res: http.ServerResponse, status: number, body: string) {
  res.statusCode = status;
  res.setHeader("content-type", "text/plain; charset=utf-8");
  res.end(body);
}

export function linearWebhookHandler(deps: LinearDeps, secret: string, track: (p: Promise<unknown>) => void, work?: BoundedWork): RawHandler {
  const verifier = new LinearWebhookClient(secret);
  const log = deps.log.child({ component: "linear-webhook" });
  return (req, res) => {
    void (async () => {
      if (req.method !== "POST") return reply(res, 405, "Method not allowed");
      let raw: Buffer;
      try {
        raw = await readRawBody(req, MAX_BODY);
      } catch (e) {
        return reply(res, e instanceof BodyTooLarge ? 413 : 400, e instanceof BodyTooLarge ? "Payload too large" : "Bad request");
      }
      const signature = req.headers["linear-signature"];
      if (typeof signature !== "string" || !signature) return reply(res, 400, "Missing webhook signature");
      let payload: any;
      try {
        payload = verifier.parseData(raw, signature);
      } catch (e) {
        log.warn({ reason: (e as Error).message }, "rejected a Linear webhook");
        return reply(res, 400, "Invalid webhook");
      }
      const problem = linearPayloadProblem(payload);
      if (problem) {
        log.warn({ problem }, "refused a malformed Linear webhook");
        return reply(res, 400, `Invalid webhook: ${problem}`);
      }
      const delivery = typeof req.headers["linear-delivery"] === "string" ? req.headers["linear-delivery"] : null;
      const routed = await routeWebhook(deps, payload);
      if (!routed) return reply(res, 200, "Ignored");
      // Too much waiting already: Linear retries a 503 later; nothing is stored.
      if (work?.full()) return reply(res, 503, "Busy, retry later");
      const keys = [...(delivery ? [`linear:delivery:${delivery}`] : []), ...routed.keys];
      if (!(await claimDelivery(deps.db, keys))) {
        log.info({ delivery, what: routed.what }, "duplicate Linear delivery ignored");
        return reply(res, 200, "Duplicate");
      }
      reply(res, 200, "OK");
      const job = () => routed.work().catch((e) => log.error({ err: e, delivery, what: routed.what }, "handling a Linear webhook failed"));
      if (!work) return track(job());
      track(
        new Promise<void>((done) => {
          if (!work.push(() => job().finally(done))) {
            log.error({ delivery, what: routed.what }, "Linear webhook dropped: the inbound queue is full");
            done();
          }
        }),
      );
    })().catch((e) => {
      log.error({ err: e }, "Linear webhook failed");
      if (!res.headersSent) reply(res, 500, "Internal error");
    });
  };
}
