/**
 * Resume: a follow-up reached an idle run; wake its sandbox (a paused one resumes on get) and run again. A local
 * sandbox suspended while idle comes back without its processes: OpenCode and the relay are started again first.
 */
import { restartAgent } from "../provision.ts";
import type { ActionContext } from "./context.ts";

export async function resumeAction(ctx: ActionContext): Promise<void> {
  const { run, store, provider, lease } = ctx;
  const sandbox = run.sandboxId ? await provider.get(run.sandboxId) : null;
  if (run.sandboxId && !sandbox) {
    await store.transition(run.id, { type: "fail", code: "sandbox_lost", reason: "The sandbox stopped while the run was idle; start a new run" }, lease);
    return;
  }
  if (sandbox?.stoppedWhileIdle) await restartAgent(run, sandbox, { ...ctx.provision, log: ctx.log, lease });
  await store.transition(run.id, { type: "follow_up" }, lease);
}
