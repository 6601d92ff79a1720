/** The dashboard's server-sent events: one bounded, debounced stream per browser tab (pages.ts). */
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Logger } from "../../log/logger.ts";
import type { RunBus } from "../../runs/run-bus.ts";
import type { LiveLimits } from "../../web/live-limits.ts";
import { HttpError } from "../http-errors.ts";

export interface StreamDeps {
  live: LiveLimits;
  bus: RunBus;
  log?: Logger;
}

/**
 * Server-sent events: `produce` runs once at the start and again (debounced by `debounceMs`) whenever the bus says
 * a watched run changed, and every 30 s (heartbeat staleness, elapsed time); `produce` sends only what changed.
 * A comment line every 10 s keeps proxies from closing the stream. Ends when `produce` says so or the browser
 * goes away. Connections are capped per run (`runId`) and in total: over the cap, 429 with a message.
 */
export async function sseStream(
  deps: StreamDeps,
  req: FastifyRequest,
  reply: FastifyReply,
  runId: string | null,
  debounceMs: number,
  watch: (runId: string) => boolean,
  produce: () => Promise<{ events: [string, unknown][]; end?: boolean }>,
) {
  const { live, bus } = deps;
  const slot = live.acquire(runId);
  if ("refused" in slot) throw new HttpError(429, slot.refused);
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store", "x-accel-buffering": "no", connection: "keep-alive", "x-content-type-options": "nosniff" });
  res.write("retry: 3000\n\n");
  let closed = false;
  let running = false;
  let again = false;
  let timer: NodeJS.Timeout | null = null;
  const close = () => {
    if (closed) return;
    closed = true;
    slot.release();
    off();
    clearInterval(ping);
    clearInterval(refresh);
    if (timer) clearTimeout(timer);
    res.end();
  };
  const flush = async (): Promise<void> => {
    if (closed) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      const out = await produce();
      if (closed) return;
      for (const [event, data] of out.events) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      if (out.end) close();
    } catch (err) {
      (deps.log ?? req.log).warn({ err }, "live update failed");
    } finally {
      running = false;
    }
    if (again && !closed) {
      again = false;
      schedule();
    }
  };
  const schedule = () => {
    if (timer || closed) return;
    timer = setTimeout(() => {
      timer = null;
      void flush();
    }, debounceMs);
  };
  const off = bus.onRun((id) => watch(id) && schedule());
  const ping = setInterval(() => res.write(": ping\n\n"), 10_000);
  const refresh = setInterval(schedule, 30_000);
  res.on("close", close);
  await flush();
}
