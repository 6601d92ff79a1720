/**
 * Webhook deduplication in the `deliveries` table: a delivery is new only when none of its keys (the
 * `linear-delivery` header, and what it is about: session + action + activity) was seen. All or nothing.
 */
import type { Db } from "../../db/database.ts";
import { deliveries } from "../../db/schema.ts";

class Duplicate extends Error {}

export async function claimDelivery(db: Db, keys: string[], source = "linear"): Promise<boolean> {
  const unique = [...new Set(keys.filter(Boolean))];
  if (!unique.length) return true;
  try {
    await db.transaction(async (tx) => {
      const rows = await tx.insert(deliveries).values(unique.map((key) => ({ key, source }))).onConflictDoNothing().returning({ key: deliveries.key });
      if (rows.length !== unique.length) throw new Duplicate();
    });
    return true;
  } catch (e) {
    if (e instanceof Duplicate) return false;
    throw e;
  }
}
