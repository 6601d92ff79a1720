/**
 * The one database module. Both kinds are reached the same way: postgres.js + Drizzle (postgres-js), the same
 * migrations (under an advisory lock), the same LISTEN/NOTIFY wake-ups.
 * - Postgres when DATABASE_URL is set.
 * - Otherwise embedded PGlite, run in a child process of its own (src/db/pglite-process.ts) and served over the
 *   Postgres wire protocol on a Unix socket, so its query work never blocks the server's event loop. PGlite is one
 *   session: the pool is one connection, which also carries LISTEN (notifications come back on it).
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import type { Logger } from "pino";
import * as schema from "./schema.ts";
import { startPgliteProcess } from "./pglite-process.ts";

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface Database {
  db: Db;
  kind: "postgres" | "pglite";
  /** Postgres URL (absent for PGlite). */
  url?: string;
  /** PGlite only: the embedded database's process id. */
  embeddedPid?(): number | undefined;
  /** Subscribe to a NOTIFY channel; returns an unsubscribe function. */
  listen(channel: string, fn: (payload: string) => void): Promise<() => Promise<void>>;
  notify(channel: string, payload: string): Promise<void>;
  close(): Promise<void>;
  /** @internal one session for the migrations' advisory lock */
  session<T>(fn: (sql: import("postgres").Sql) => Promise<T>): Promise<T>;
}

export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../migrations");

export async function openDatabase(opts: { url?: string; dataDir: string; poolSize?: number; log?: Logger }): Promise<Database> {
  const { default: postgres } = await import("postgres");
  const { drizzle } = await import("drizzle-orm/postgres-js");
  if (opts.url) {
    const url = opts.url;
    const client = postgres(url, { max: opts.poolSize ?? 10, onnotice: () => {}, connect_timeout: 10 });
    const db = drizzle(client, { schema }) as unknown as Db;
    return {
      db,
      kind: "postgres",
      url,
      async listen(channel, fn) {
        const sub = await client.listen(channel, fn);
        return async () => {
          await sub.unlisten().catch(() => {});
        };
      },
      async notify(channel, payload) {
        await client.notify(channel, payload);
      },
      async close() {
        await client.end({ timeout: 5 });
      },
      async session(fn) {
        // Session-level advisory locks need one connection: a client of its own.
        const one = postgres(url, { max: 1, onnotice: () => {} });
        try {
          return await fn(one);
        } finally {
          await one.end({ timeout: 5 });
        }
      },
    };
  }

  const child = await startPgliteProcess(opts.dataDir, opts.log);
  const listeners = new Map<string, Set<(payload: string) => void>>();
  // `onnotify` (NotificationResponse on any pool connection) is a postgres.js option its types leave out.
  const onnotify = (channel: string, payload: string) => {
    for (const fn of listeners.get(channel) ?? []) fn(payload);
  };
  const client = postgres({
    path: child.socketPath,
    user: "postgres",
    database: "postgres",
    max: 1, // PGlite is one session (see pglite-child.mjs)
    idle_timeout: 0,
    max_lifetime: null,
    connect_timeout: 10,
    onnotice: () => {},
    ...({ onnotify } as object),
  });
  const quoted = (channel: string) => `"${channel.replace(/"/g, '""')}"`;
  // A restarted child is a new session: LISTEN again.
  child.onRestart(() => {
    for (const ch of listeners.keys()) {
      client.unsafe(`listen ${quoted(ch)}`).catch((err: Error) => opts.log?.error({ component: "database", err: err.message }, "LISTEN after restart failed"));
    }
  });
  const db = drizzle(client, { schema }) as unknown as Db;
  let closed = false;
  return {
    db,
    kind: "pglite",
    embeddedPid: () => child.pid(),
    async listen(channel, fn) {
      let set = listeners.get(channel);
      if (!set) {
        listeners.set(channel, (set = new Set()));
        await client.unsafe(`listen ${quoted(channel)}`);
      }
      set.add(fn);
      return async () => {
        set.delete(fn);
        if (set.size || closed) return;
        listeners.delete(channel);
        await client.unsafe(`unlisten ${quoted(channel)}`).catch(() => {});
      };
    },
    async notify(channel, payload) {
      await client`select pg_notify(${channel}, ${payload})`;
    },
    async close() {
      closed = true;
      await client.end({ timeout: 5 });
      await child.stop();
    },
    // The pool is a single connection: it is the session.
    session: (fn) => fn(client),
  };
}

/** Apply the SQL migrations in `migrations/`, serialised across server processes with an advisory lock. */
export async function migrate(database: Database): Promise<void> {
  const LOCK = 7_406_221; // arbitrary, constant: "deckhand migrations"
  const { drizzle } = await import("drizzle-orm/postgres-js");
  const { migrate: run } = await import("drizzle-orm/postgres-js/migrator");
  await database.session(async (sql) => {
    await sql`select pg_advisory_lock(${LOCK})`;
    try {
      await run(drizzle(sql), { migrationsFolder: MIGRATIONS_DIR });
    } finally {
      await sql`select pg_advisory_unlock(${LOCK})`;
    }
  });
}
