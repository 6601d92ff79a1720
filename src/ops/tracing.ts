/**
 * OpenTelemetry traces. With OTEL_EXPORTER_OTLP_ENDPOINT set, spans go to `<endpoint>/v1/traces` over OTLP/HTTP:
 * webhook → run created → provisioning → relay ingest → delivery → each notification, each carrying
 * `deckhand.run_id`. Without it, `withSpan` costs a no-op tracer call.
 */
import { type Attributes, context, type Span, SpanStatusCode, trace } from "@opentelemetry/api";
import type { Config } from "../config/config.ts";
import type { Logger } from "../log/logger.ts";

const tracer = () => trace.getTracer("deckhand");

export const RUN_ID = "deckhand.run_id";

/** Run `fn` in a span (a child of the current one); errors mark the span and are rethrown. */
export async function withSpan<T>(name: string, attributes: Attributes, fn: (span: Span) => Promise<T>): Promise<T> {
  return await tracer().startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (e) {
      span.recordException(e as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (e as Error).message?.slice(0, 200) });
      throw e;
    } finally {
      span.end();
    }
  });
}

/** A span around a raw Node handler that answers through `res` (webhooks): ends when the response finishes. */
export function spanForResponse(name: string, attributes: Attributes, res: { once(ev: "close", fn: () => void): unknown; statusCode: number }, fn: () => void): void {
  const span = tracer().startSpan(name, { attributes });
  res.once("close", () => {
    span.setAttribute("http.response.status_code", res.statusCode);
    if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end();
  });
  context.with(trace.setSpan(context.active(), span), fn);
}

export interface Tracing {
  shutdown(): Promise<void>;
}

/** Register the global tracer provider when an endpoint is configured; null otherwise. */
export async function startTracing(config: Pick<Config, "OTEL_EXPORTER_OTLP_ENDPOINT" | "OTEL_SERVICE_NAME">, log: Logger, role = "all"): Promise<Tracing | null> {
  if (!config.OTEL_EXPORTER_OTLP_ENDPOINT) return null;
  const { NodeTracerProvider } = await import("@opentelemetry/sdk-trace-node");
  const { BatchSpanProcessor } = await import("@opentelemetry/sdk-trace-base");
  const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-http");
  const { resourceFromAttributes } = await import("@opentelemetry/resources");
  const url = `${config.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, "")}/v1/traces`;
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ "service.name": config.OTEL_SERVICE_NAME, "deckhand.role": role }),
    // Bounded: at most 2048 spans wait for export; the exporter drops (never blocks) when the collector is down.
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url, timeoutMillis: 5000 }), { maxQueueSize: 2048, scheduledDelayMillis: 1000 })],
  });
  provider.register();
  log.info({ url }, "tracing: OpenTelemetry spans exported over OTLP/HTTP");
  return {
    async shutdown() {
      await provider.forceFlush().catch(() => {});
      await provider.shutdown().catch(() => {});
      trace.disable();
    },
  };
}
