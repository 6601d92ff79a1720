/** Destroy: a finished run's sandbox is removed and recorded as released. */
import { destroyRunSandboxes } from "../provision.ts";
import type { ActionContext } from "./context.ts";

export async function destroyAction(ctx: ActionContext): Promise<void> {
  const n = await destroyRunSandboxes(ctx.provider, ctx.run.id, ctx.log);
  await ctx.store.recordSandboxReleased(ctx.run.id, ctx.lease);
  ctx.log.info({ destroyed: n }, "sandbox released");
}
