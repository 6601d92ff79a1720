/** A working run as the pure reconciler decision (`decideNext`) sees it, started at `t0`, with overrides. */
export function decideInput<T extends object>(t0: Date, over: T = {} as T) {
  return {
    status: "running",
    createdAt: t0,
    statusChangedAt: t0,
    startedAt: t0,
    lastHeartbeatAt: new Date(t0.getTime() + 10_000),
    opencodeAlive: true,
    phases: [{ phase: "provision_attempt", at: t0.toISOString() }, { phase: "relay_started", at: t0.toISOString() }],
    attempts: 1,
    leaseExpiresAt: null,
    idleInputSeq: null as number | null,
    deliveredInputSeq: 0,
    keepaliveUntil: null,
    sandboxProvider: "local",
    sandboxDestroyedAt: null,
    lastEventSeq: 5,
    ...over,
  };
}
