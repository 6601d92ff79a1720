/** The run page at its unguessable URL `/r/<pageToken>` (and the raw patch). */
import type { FastifyInstance } from "fastify";
import { viewOf } from "../../runs/run-view.ts";
import type { RunService } from "../../runs/run-service.ts";
import { renderRunPage } from "../../web/run-page.ts";
import { HttpError } from "../http-errors.ts";

export function pageRoutes(app: FastifyInstance, service: RunService) {
  const load = async (token: string) => {
    const run = /^[\w-]{20,64}$/.test(token) ? await service.store.getByPageToken(token) : null;
    if (!run) throw new HttpError(404, "no such run page");
    return run;
  };
  app.get<{ Params: { token: string } }>("/r/:token", async (req, reply) => {
    const run = await load(req.params.token);
    const events = await service.store.events(run.id, 0, 100_000);
    reply.header("cache-control", "no-store").header("referrer-policy", "no-referrer").type("text/html; charset=utf-8");
    return renderRunPage(viewOf(run, events, service.runPageUrl(run)), run.diff);
  });
  app.get<{ Params: { token: string } }>("/r/:token/diff.patch", async (req, reply) => {
    const run = await load(req.params.token);
    reply.header("cache-control", "no-store").header("content-disposition", `attachment; filename="${run.id}.patch"`).type("text/x-diff; charset=utf-8");
    return run.diff ?? "";
  });
}
