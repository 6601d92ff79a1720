/**
 * The one database module: Postgres through postgres.js when DATABASE_URL is set, embedded PGlite otherwise.
 * Both get the same Drizzle schema, the same migrations, and the same LISTEN/NOTIFY wake-ups.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import * as schema from "./schema.ts";

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface Database {
  db: Db;
  kind: "postgres" | "pglite";
  /** Postgres URL (absent for PGlite). */
  url?: string;
  /** Subscribe to a NOTIFY channel; returns an unsubscribe function. */
  listen(channel: string, fn: (payload: string) => void): Promise<() => Promise<void>>;
  notify(channel: string, payload: string): Promise<void>;
  close(): Promise<void>;
}

export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../migrations");

export async function openDatabase(opts: { url?: string; dataDir: string; poolSize?: number }): Promise<Database> {
  if (opts.url) {
    const { default: postgres } = await import("postgres");
    const { drizzle } = await import("drizzle-orm/postgres-js");
    const client = postgres(opts.url, { max: opts.poolSize ?? 10, onnotice: () => {}, connect_timeout: 10 });
    const db = drizzle(client, { schema }) as unknown as Db;
    return {
      db,
      kind: "postgres",
      url: opts.url,
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
    };
  }
  const { PGlite } = await import("@electric-sql/pglite");
  const { drizzle } = await import("drizzle-orm/pglite");
  const dir = path.join(opts.dataDir, "pglite");
  fs.mkdirSync(dir, { recursive: true });
  const pg = await PGlite.create(dir);
  const db = drizzle(pg, { schema }) as unknown as Db;
  let closed = false;
  return {
    db,
    kind: "pglite",
    async listen(channel, fn) {
      const unsub = await pg.listen(channel, fn);
      return async () => {
        if (!closed) await unsub().catch(() => {});
      };
    },
    async notify(channel, payload) {
      await pg.query("select pg_notify($1, $2)", [channel, payload]);
    },
    async close() {
      closed = true;
      await pg.close();
    },
  };
}

/** Apply the SQL migrations in `migrations/`, serialised across server processes with an advisory lock. */
export async function migrate(database: Database): Promise<void> {
  const LOCK = 7_406_221; // arbitrary, constant: "deckhand migrations"
  if (database.kind === "postgres") {
    // Session-level advisory locks need one connection: migrate through a client of its own.
    const { default: postgres } = await import("postgres");
    const { drizzle } = await import("drizzle-orm/postgres-js");
    const { migrate: run } = await import("drizzle-orm/postgres-js/migrator");
    const client = postgres(database.url!, { max: 1, onnotice: () => {} });
    try {
      await client`select pg_advisory_lock(${LOCK})`;
      await run(drizzle(client), { migrationsFolder: MIGRATIONS_DIR });
      await client`select pg_advisory_unlock(${LOCK})`;
    } finally {
      await client.end({ timeout: 5 });
    }
  } else {
    const { migrate: run } = await import("drizzle-orm/pglite/migrator");
    await run(database.db as never, { migrationsFolder: MIGRATIONS_DIR });
  }
}
