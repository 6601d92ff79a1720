/** Forget the sandbox: a finished run's sandbox lived on a host that is gone; its reaper removes it if it returns. */
import type { ActionContext } from "./context.ts";

export async function forgetSandboxAction(ctx: ActionContext): Promise<void> {
  await ctx.store.recordSandboxReleased(ctx.run.id, ctx.lease);
  ctx.log.info({ host: ctx.run.sandboxHost }, "the sandbox's host is gone; its reaper removes the sandbox if it comes back");
}
