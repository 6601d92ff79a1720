/**
 * Health: /livez (the process answers) and /readyz (database reachable, migrations applied, not draining).
 * Load balancers and orchestrators send traffic by /readyz; a draining process answers 503 there while it finishes.
 */
import fs from "node:fs";
import path from "node:path";
import { sql } from "drizzle-orm";
import type { FastifyInstance } from "fastify";
import { type Database, MIGRATIONS_DIR } from "../db/database.ts";

export interface ReadyCheck {
  ready: boolean;
  checks: { database: string; migrations: string; draining: boolean; starting: boolean };
}

/** Pure: the verdict from what was observed. */
export function readiness(o: { databaseError: string | null; applied: number | null; expected: number; draining: boolean; starting?: boolean }): ReadyCheck {
  const database = o.databaseError ? `unreachable: ${o.databaseError}` : "ok";
  const migrations =
    o.applied === null ? "unknown" : o.applied >= o.expected ? "ok" : `${o.expected - o.applied} of ${o.expected} not applied (run: deckhand migrate)`;
  const starting = o.starting ?? false;
  return { ready: !o.databaseError && migrations === "ok" && !o.draining && !starting, checks: { database, migrations, draining: o.draining, starting } };
}

export function expectedMigrations(dir = MIGRATIONS_DIR): number {
  const journal = JSON.parse(fs.readFileSync(path.join(dir, "meta", "_journal.json"), "utf8")) as { entries: unknown[] };
  return journal.entries.length;
}

export async function checkReady(database: Database, state: { draining: boolean; starting: boolean }, timeoutMs = 2000): Promise<ReadyCheck> {
  let databaseError: string | null = null;
  let applied: number | null = null;
  const timeout = new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs).unref());
  try {
    const r = (await Promise.race([
      database.db.execute(sql`select count(*)::int as n from drizzle.__drizzle_migrations` as never),
      timeout,
    ])) as unknown as { rows?: { n: number }[] } | { n: number }[];
    applied = Number((Array.isArray(r) ? r : (r.rows ?? []))[0]?.n ?? 0);
  } catch (e) {
    // Drizzle wraps the driver's error (its message quotes the query): the cause says what happened.
    const inner = ((e as { cause?: unknown }).cause ?? e) as Error & { code?: string };
    // A reachable database without the migrations table (42P01) or schema (3F000) has none applied.
    if (inner.code === "42P01" || inner.code === "3F000" || /relation .* does not exist|schema .* does not exist/.test(inner.message ?? "")) applied = 0;
    else databaseError = (inner.message || inner.code || String(inner)).slice(0, 200);
  }
  return readiness({ databaseError, applied, expected: expectedMigrations(), ...state });
}

export function healthRoutes(app: FastifyInstance, deps: { database: Database; state: () => { draining: boolean; starting: boolean }; role: string }): void {
  app.get("/livez", async () => ({ ok: true, role: deps.role }));
  app.get("/readyz", async (_req, reply) => {
    const r = await checkReady(deps.database, deps.state());
    reply.code(r.ready ? 200 : 503);
    return { ...r, role: deps.role };
  });
}
