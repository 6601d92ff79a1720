/** Fail: the watchdog (or a gone host) ended the run; a provider that stopped the sandbox over a limit says why. */
import type { ActionContext, ActionOf } from "./context.ts";

export async function failAction(ctx: ActionContext, action: ActionOf<"fail">): Promise<void> {
  const { run, provider } = ctx;
  // A sandbox the provider stopped for going over a limit (fork bomb, memory hog): say that, plainly.
  const overLimit = run.sandboxId ? await provider.endReason?.(run.sandboxId).catch(() => null) : null;
  const reason = overLimit ?? action.reason;
  ctx.log.warn({ code: action.code, reason }, "failing run");
  await ctx.store.transition(run.id, { type: "fail", reason, code: action.code }, ctx.lease);
}
