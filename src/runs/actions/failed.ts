/**
 * An action threw: try again after a growing pause (`retry_at`), and after DELIVERY_MAX_ATTEMPTS failures in a row
 * end the run with the last error. Written under the lease.
 */
import { isTerminal } from "../model.ts";
import { afterFailure } from "../retry.ts";
import type { Action } from "../decide.ts";
import type { ActionContext } from "./context.ts";

export async function actionFailed(ctx: ActionContext, action: Action, err: Error): Promise<void> {
  const { store, config, lease, log } = ctx;
  const fresh = await store.get(ctx.run.id);
  if (!fresh) return;
  const message = (err.message || String(err)).replace(/x-access-token:[^@\s]+/g, "x-access-token:***");
  const what = action.kind === "deliver" ? "Collecting and pushing the result" : `The ${action.kind} step`;
  const verdict = afterFailure(
    { attempts: fresh.retryAttempts + 1, maxAttempts: config.DELIVERY_MAX_ATTEMPTS, error: message, what, now: new Date() },
    { baseMs: config.RETRY_BASE_SECONDS * 1000, capMs: config.RETRY_MAX_SECONDS * 1000 },
  );
  if (verdict.kind === "retry") {
    log.warn({ action: action.kind, attempts: verdict.attempts, retryAt: verdict.at.toISOString(), err: message.slice(0, 500) }, "reconciler action failed; will retry");
    await store.scheduleRetry(fresh.id, { at: verdict.at, attempts: verdict.attempts, error: message }, lease);
    return;
  }
  log.error({ action: action.kind, attempts: verdict.attempts, err: message.slice(0, 500) }, "reconciler action kept failing; giving up");
  if (isTerminal(fresh.status)) {
    await store.recordSandboxReleased(fresh.id, lease); // could not destroy it: the reaper is the backstop
    return;
  }
  const code = action.kind === "deliver" ? "delivery_failed" : "reconciler_failed";
  if (!(await store.transition(fresh.id, { type: "fail", code, reason: verdict.reason }, lease))) {
    await store.scheduleRetry(fresh.id, { at: new Date(Date.now() + config.RETRY_MAX_SECONDS * 1000), attempts: verdict.attempts, error: message }, lease);
  }
}
