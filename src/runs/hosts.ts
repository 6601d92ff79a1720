/**
 * Several hosts: every server process heartbeats in the database (`server_processes`), under the id of its host
 * (the machine and DATA_DIR its local sandboxes live in). A run's local sandbox belongs to the host that created
 * it; only that host acts on it. When no process of that host has heartbeated for HOST_DEAD_AFTER_SECONDS, the
 * host is gone and another server fails the run with a plain reason.
 *
 * `sandboxOwnership` is the pure decision; `HostHeartbeat` is the I/O.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { lt, sql } from "drizzle-orm";
import type { Db } from "../db/database.ts";
import { serverProcesses } from "../db/schema.ts";
import type { Logger } from "../log/logger.ts";

export type Ownership =
  /** No host owns the sandbox (remote provider, or none yet): any server may act. */
  | "any"
  | "mine"
  /** Another host owns it and is alive: leave the run to it. */
  | "other_alive"
  /** Another host owns it and has stopped heartbeating. */
  | "owner_gone";

/** Who may act on a run's sandbox. Pure. */
export function sandboxOwnership(sandboxHost: string | null, me: string, aliveHosts: ReadonlySet<string>): Ownership {
  if (!sandboxHost) return "any";
  if (sandboxHost === me) return "mine";
  return aliveHosts.has(sandboxHost) ? "other_alive" : "owner_gone";
}

export const hostGoneReason = (host: string) =>
  `The Deckhand server that held this run's sandbox (host ${host}) stopped, so the sandbox can no longer be reached; start the run again`;

/** HOST_ID, or an id generated once and kept in DATA_DIR/host-id (processes sharing a DATA_DIR are one host). */
export function resolveHostId(dataDir: string, configured?: string): string {
  if (configured) return configured;
  const file = path.join(dataDir, "host-id");
  try {
    const id = fs.readFileSync(file, "utf8").trim();
    if (/^[\w.-]{1,64}$/.test(id)) return id;
  } catch {
    /* not yet */
  }
  fs.mkdirSync(dataDir, { recursive: true });
  const id = `${os.hostname().replace(/[^\w.-]/g, "_").slice(0, 40)}-${crypto.randomBytes(4).toString("hex")}`;
  try {
    fs.writeFileSync(file, `${id}\n`, { flag: "wx" });
    return id;
  } catch {
    return fs.readFileSync(file, "utf8").trim(); // another process of this host wrote it first
  }
}

export class HostHeartbeat {
  readonly processId = `${os.hostname()}:${process.pid}:${crypto.randomBytes(3).toString("hex")}`;
  private timer: NodeJS.Timeout | null = null;
  private alive: { at: number; hosts: Set<string> } | null = null;

  constructor(
    private readonly o: { db: Db; hostId: string; everyMs: number; deadAfterMs: number; log: Logger },
  ) {}

  get hostId(): string {
    return this.o.hostId;
  }

  async start(): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => void this.beat().catch((e) => this.o.log.warn({ err: (e as Error).message }, "host heartbeat failed")), this.o.everyMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  async beat(): Promise<void> {
    const { db } = this.o;
    await db
      .insert(serverProcesses)
      .values({ id: this.processId, hostId: this.o.hostId, hostname: os.hostname(), pid: process.pid })
      .onConflictDoUpdate({ target: serverProcesses.id, set: { heartbeatAt: sql`now()` } });
    // Rows of processes gone for a day are history.
    await db.delete(serverProcesses).where(lt(serverProcesses.heartbeatAt, sql`now() - interval '1 day'`));
  }

  /** Hosts with a process that heartbeated within HOST_DEAD_AFTER_SECONDS (by the database's clock). Cached briefly. */
  async aliveHosts(): Promise<Set<string>> {
    if (this.alive && Date.now() - this.alive.at < 1000) return this.alive.hosts;
    const secs = Math.ceil(this.o.deadAfterMs / 1000);
    const rows = await this.o.db
      .selectDistinct({ hostId: serverProcesses.hostId })
      .from(serverProcesses)
      .where(sql`${serverProcesses.heartbeatAt} > now() - make_interval(secs => ${secs})`);
    const hosts = new Set(rows.map((r) => r.hostId));
    hosts.add(this.o.hostId); // this process is alive by definition
    this.alive = { at: Date.now(), hosts };
    return hosts;
  }
}
