/** Resume: a follow-up reached an idle run; wake its sandbox (a paused one resumes on get) and run again. */
import type { ActionContext } from "./context.ts";

export async function resumeAction(ctx: ActionContext): Promise<void> {
  const { run, store, provider, lease } = ctx;
  if (run.sandboxId && !(await provider.get(run.sandboxId))) {
    await store.transition(run.id, { type: "fail", code: "sandbox_lost", reason: "The sandbox stopped while the run was idle; start a new run" }, lease);
    return;
  }
  await store.transition(run.id, { type: "follow_up" }, lease);
}
