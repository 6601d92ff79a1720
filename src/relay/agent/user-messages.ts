/**
 * Inputs reach the agent in the order people sent them. `prompt_async` answers 204 before OpenCode has created the
 * user message (the first prompt of a run waits for the instance to boot), so two calls back to back can be
 * registered in the opposite order. The relay therefore sends the next prompt only once OpenCode has registered
 * the previous one: a new user `message.updated` of our session on the event stream (bounded wait).
 */
import type { OpencodeEvent } from "./events.ts";

/** The id of the user message an event registers, if it is one (`message.updated` with `info.role === "user"`). */
export function userMessageIdOf(ev: OpencodeEvent, sessionId: string | undefined): string | undefined {
  if (ev.type !== "message.updated") return undefined;
  const info = ev.properties?.info;
  if (!info || info.role !== "user" || typeof info.id !== "string") return undefined;
  const sid = info.sessionID ?? ev.properties?.sessionID;
  return sid === sessionId ? info.id : undefined;
}

/** Distinct user messages seen on the stream (ids only, capped), and a way to wait for the next one. */
export class UserMessageWatch {
  private readonly ids = new Set<string>();
  private seen = 0;
  private waiters: (() => void)[] = [];

  constructor(private readonly maxIds = 10_000) {}

  /** How many distinct user messages have been seen so far. */
  get count(): number {
    return this.seen;
  }

  observe(ev: OpencodeEvent, sessionId: string | undefined): void {
    const id = userMessageIdOf(ev, sessionId);
    if (id === undefined || this.ids.has(id)) return;
    if (this.ids.size >= this.maxIds) this.ids.clear(); // old ids never come back as new messages
    this.ids.add(id);
    this.seen++;
    const w = this.waiters;
    this.waiters = [];
    for (const wake of w) wake();
  }

  /** Resolves true once more than `count` user messages were seen; false after `timeoutMs` or on abort. */
  async waitForMoreThan(count: number, timeoutMs: number, signal: AbortSignal): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    while (this.seen <= count) {
      const left = end - Date.now();
      if (left <= 0 || signal.aborted) return false;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          resolve();
        };
        const timer = setTimeout(done, left);
        signal.addEventListener("abort", done, { once: true });
        this.waiters.push(done);
      });
    }
    return true;
  }
}
