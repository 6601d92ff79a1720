/** Deliver: collect the change from the sandbox, push it, and record the result (the run goes idle, or fails). */
import { RUN_ID, withSpan } from "../../ops/tracing.ts";
import { afterDelivery } from "../decide.ts";
import { collectAndPush } from "../deliver.ts";
import type { ActionContext } from "./context.ts";

export async function deliverAction(ctx: ActionContext): Promise<void> {
  const { run, store, provider, lease, log } = ctx;
  const sandbox = run.sandboxId ? await provider.get(run.sandboxId) : null;
  if (!sandbox) {
    const overLimit = run.sandboxId ? await provider.endReason?.(run.sandboxId).catch(() => null) : null;
    await store.transition(run.id, { type: "fail", code: "sandbox_lost", reason: overLimit ?? "The sandbox stopped before the result could be collected" }, lease);
    return;
  }
  const idleSeq = run.idleInputSeq ?? 0;
  lease.signal.throwIfAborted();
  const { result, diff } = await withSpan("run.deliver", { [RUN_ID]: run.id }, () => collectAndPush(run, sandbox, { ...ctx.deliver, log, signal: lease.signal }));
  lease.signal.throwIfAborted();
  const v = afterDelivery(result, run.deliveredInputSeq);
  if (v.kind === "fail") {
    await store.transition(run.id, { type: "fail", reason: v.reason, code: v.code, delivery: { result, diff } }, lease);
    return;
  }
  const keepaliveUntil = new Date(Date.now() + ctx.config.RUN_KEEPALIVE_SECONDS * 1000);
  if (!(await store.transition(run.id, { type: "result_delivered", delivery: { result, diff }, keepaliveUntil, deliveredInputSeq: idleSeq }, lease))) return;
  log.info({ files: result.filesChanged.length, pushed: result.pushed, url: result.url }, "result delivered; run is idle");
  // Providers that can pause (E2B with E2B_PAUSE_WHEN_IDLE, local with LOCAL_SUSPEND_WHEN_IDLE) stop paying for the
  // idle keep-alive. Not when a follow-up came meanwhile: the relay may be handing it to OpenCode already.
  if ((await store.lastPromptSeq(run.id)) > idleSeq) return;
  const paused = await sandbox.suspendWhileIdle?.().catch((e: Error) => void log.warn({ err: e.message }, "could not pause the idle sandbox"));
  if (paused) log.info({ sandboxId: sandbox.id }, "sandbox paused while idle");
}
