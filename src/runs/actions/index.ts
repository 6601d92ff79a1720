/** The reconciler's dispatch: one handler per action kind (each in its own file). */
import type { Action } from "../decide.ts";
import { closeAction } from "./close.ts";
import type { ActionContext } from "./context.ts";
import { deliverAction } from "./deliver.ts";
import { destroyAction } from "./destroy.ts";
import { failAction } from "./fail.ts";
import { forgetSandboxAction } from "./forget-sandbox.ts";
import { provisionAction } from "./provision.ts";
import { resumeAction } from "./resume.ts";

export { actionFailed } from "./failed.ts";
export type { ActionContext } from "./context.ts";

export async function runAction(ctx: ActionContext, action: Action): Promise<void> {
  switch (action.kind) {
    case "provision":
      return provisionAction(ctx);
    case "deliver":
      return deliverAction(ctx);
    case "resume":
      return resumeAction(ctx);
    case "close":
      return closeAction(ctx);
    case "fail":
      return failAction(ctx, action);
    case "destroy":
      return destroyAction(ctx);
    case "forget_sandbox":
      return forgetSandboxAction(ctx);
    case "none":
      return;
  }
}
