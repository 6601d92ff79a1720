/** The relay's side of protocol.ts: the four backend endpoints, each with a timeout. A 401 means the run is over. */
import type { CommandBatch, EventAck, Heartbeat, RelayCommand, RelayEvent } from "../protocol.ts";

export class RunOverError extends Error {
  constructor(what: string) {
    super(`backend answered 401 to ${what}: the run is over`);
  }
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    what: string,
  ) {
    super(`backend answered ${status} to ${what}`);
  }
}

export class BackendClient {
  private readonly base: string;
  private readonly auth: string;

  constructor(backendUrl: string, runId: string, token: string) {
    this.base = `${backendUrl}/relay/v1/runs/${encodeURIComponent(runId)}`;
    this.auth = `Bearer ${token}`;
  }

  async postEvents(events: RelayEvent[]): Promise<number> {
    const ack = (await this.call("POST", "/events", { events }, 15_000)) as EventAck;
    if (typeof ack?.ackedSeq !== "number") throw new Error("backend event ack without ackedSeq");
    return ack.ackedSeq;
  }

  async heartbeat(hb: Heartbeat): Promise<void> {
    await this.call("POST", "/heartbeat", hb, 10_000);
  }

  async commands(after: number, waitMs: number, signal?: AbortSignal): Promise<RelayCommand[]> {
    const batch = (await this.call("GET", `/commands?after=${after}&waitMs=${waitMs}`, undefined, waitMs + 10_000, signal)) as CommandBatch;
    return Array.isArray(batch?.commands) ? batch.commands : [];
  }

  async ackCommand(seq: number): Promise<void> {
    await this.call("POST", "/commands/ack", { seq }, 10_000);
  }

  private async call(method: string, path: string, body: unknown, timeoutMs: number, signal?: AbortSignal): Promise<unknown> {
    const what = `${method} ${path.split("?")[0]}`;
    const timeout = AbortSignal.timeout(timeoutMs);
    const res = await fetch(this.base + path, {
      method,
      headers: { authorization: this.auth, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: signal ? AbortSignal.any([timeout, signal]) : timeout,
    });
    const text = await res.text();
    if (res.status === 401) throw new RunOverError(what);
    if (!res.ok) throw new HttpError(res.status, what);
    return text ? JSON.parse(text) : {};
  }
}
