/**
 * Test set-up only: put a run row in a given state by writing the columns directly (the server writes runs only
 * through RunStore's intents; tests may set up rows, e.g. "running, with this relay token", without a sandbox).
 */
import { eq } from "drizzle-orm";
import type { Db } from "../../src/db/database.ts";
import { type NewRun, runs } from "../../src/db/schema.ts";

export async function forceRunRow(db: Db, runId: string, cols: Partial<NewRun>): Promise<void> {
  await db.update(runs).set(cols).where(eq(runs.id, runId));
}
