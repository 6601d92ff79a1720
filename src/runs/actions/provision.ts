/** Provision: start a sandbox with OpenCode and the relay; a failure is retried with backoff or fails the run. */
import { observeProvisioning } from "../../ops/metrics.ts";
import { RUN_ID, withSpan } from "../../ops/tracing.ts";
import { SandboxError } from "../../sandbox/provider.ts";
import { afterProvisionFailure } from "../decide.ts";
import { LeaseLost, mustHold } from "../lease.ts";
import { destroyRunSandboxes, provision, ProvisionError } from "../provision.ts";
import type { ActionContext } from "./context.ts";

export async function provisionAction(ctx: ActionContext): Promise<void> {
  const { run, store, provider, lease, log } = ctx;
  const attempts = run.attempts + 1;
  mustHold(run.id, await store.phase(run.id, { phase: "provision_attempt", attempts }, lease), lease);
  log.info({ attempt: attempts, repo: run.repo }, "provisioning");
  const startedAt = performance.now();
  try {
    await withSpan("run.provision", { [RUN_ID]: run.id, "deckhand.attempt": attempts, "deckhand.provider": provider.name }, () =>
      provision(run, { ...ctx.provision, log, hostId: ctx.hostId, lease }),
    );
    observeProvisioning((performance.now() - startedAt) / 1000);
    await ctx.breaker.success();
  } catch (e) {
    lease.signal.throwIfAborted();
    if (e instanceof LeaseLost) throw e;
    const pe =
      e instanceof ProvisionError
        ? e
        : e instanceof SandboxError // the provider's own words and retry advice (bad key, quota, ...)
          ? new ProvisionError(e.message, `sandbox_${e.code}`, e.retryable)
          : new ProvisionError((e as Error).message, "provision_error", true);
    log.warn({ code: pe.code, retryable: pe.retryable, attempt: attempts, err: pe.message }, "provisioning failed");
    if (pe.code.startsWith("sandbox_")) await ctx.providerFailed(pe.message);
    else await ctx.breaker.neutral();
    const v = afterProvisionFailure({ attempts, maxAttempts: ctx.config.PROVISION_MAX_ATTEMPTS, retryable: pe.retryable, code: pe.code, message: pe.message, now: new Date() });
    if (v.kind === "retry") {
      await destroyRunSandboxes(provider, run.id, log).catch(() => 0);
      await store.scheduleRetry(run.id, { at: v.at, attempts, error: pe.message }, lease);
      return;
    }
    await store.transition(run.id, { type: "fail", reason: v.reason, code: v.code }, lease);
  }
}
