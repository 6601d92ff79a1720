/** Close: an idle run's keep-alive ran out. */
import type { ActionContext } from "./context.ts";

export async function closeAction(ctx: ActionContext): Promise<void> {
  await ctx.store.transition(ctx.run.id, { type: "keepalive_expired" }, ctx.lease);
}
