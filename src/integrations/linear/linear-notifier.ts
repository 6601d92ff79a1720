/** Linear behind the SurfaceNotifier interface: pure planning (plan-messages.ts) + sending (send-message.ts). */
import type { Notification, Run } from "../../db/schema.ts";
import type { Plan, PlanInput, SurfaceNotifier } from "../../notify/notifier.ts";
import { LINEAR_SURFACE, type LinearClients } from "./linear-clients.ts";
import type { LinearPayload } from "./messages.ts";
import { type LinearVerbosity, planLinearMessages } from "./plan-messages.ts";
import { sendLinearMessage } from "./send-message.ts";
import { linearRef } from "./source-ref.ts";

export class LinearNotifier implements SurfaceNotifier {
  readonly surface = LINEAR_SURFACE;
  constructor(
    private readonly clients: LinearClients,
    /** LINEAR_VERBOSITY: how much of the run an agent session shows. */
    private readonly verbosity: LinearVerbosity = "normal",
  ) {}

  wants(run: Run): boolean {
    return linearRef(run) !== null;
  }

  plan(input: PlanInput): Plan {
    return planLinearMessages(input, this.verbosity);
  }

  async send(message: Notification): Promise<Record<string, unknown>> {
    return sendLinearMessage(this.clients, message.payload as unknown as LinearPayload);
  }
}
