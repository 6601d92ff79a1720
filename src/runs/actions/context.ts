/** What every reconciler action works with: the run as read under its lease, the lease, and the reconciler's parts. */
import type { Config } from "../../config/config.ts";
import type { Run } from "../../db/schema.ts";
import type { Logger } from "../../log/logger.ts";
import type { SandboxProvider } from "../../sandbox/provider.ts";
import type { ProviderBreaker } from "../provider-breaker.ts";
import type { Action } from "../decide.ts";
import type { DeliverDeps } from "../deliver.ts";
import type { HeldLease } from "../lease.ts";
import type { ProvisionDeps } from "../provision.ts";
import type { RunStore } from "../run-store.ts";

export interface ActionContext {
  /** The run, read again after the lease was taken. */
  run: Run;
  /** Every write is conditioned on it; its signal aborts when it is lost. */
  lease: HeldLease;
  store: RunStore;
  provider: SandboxProvider;
  config: Config;
  log: Logger;
  breaker: ProviderBreaker;
  provision: Omit<ProvisionDeps, "log" | "lease">;
  deliver: Omit<DeliverDeps, "log" | "signal">;
  /** This server's host (several hosts), recorded as the owner of a local sandbox. */
  hostId?: string;
  /** A sandbox could not be created: count it against the provider (the breaker) and tell the queued runs. */
  providerFailed(message: string): Promise<void>;
}

export type ActionOf<K extends Action["kind"]> = Extract<Action, { kind: K }>;
