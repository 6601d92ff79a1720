/**
 * The kinds of value the configuration is made of (booleans, counts, lists, name=value pairs, permission rules) and
 * their parsers; config.ts declares every variable with them.
 */
import { z } from "zod";

export const bool = z
  .enum(["true", "false", "1", "0", "yes", "no"])
  .transform((v) => v === "true" || v === "1" || v === "yes");

export const positiveInt = (def: number) => z.coerce.number().int().positive().default(def);

/** `name=value,name2=value2` */
export function parsePairs(raw: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!raw) return out;
  for (const part of raw.split(",").map((s) => s.trim()).filter(Boolean)) {
    const eq = part.indexOf("=");
    if (eq <= 0 || eq === part.length - 1) throw new Error(`"${part}" is not name=value`);
    out[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return out;
}

/** A tool call routed to a person: `tool` or `tool:pattern` (OpenCode's wildcard patterns, e.g. `git push*`). */
export interface PermissionRule {
  tool: string;
  pattern?: string;
}

/** `bash:git push*,webfetch` → rules. */
export function parsePermissions(raw: string | undefined): PermissionRule[] {
  const out: PermissionRule[] = [];
  for (const part of (raw ?? "").split(",").map((s) => s.trim()).filter(Boolean)) {
    const colon = part.indexOf(":");
    const tool = (colon < 0 ? part : part.slice(0, colon)).trim();
    const pattern = colon < 0 ? undefined : part.slice(colon + 1).trim();
    if (!/^[a-z][a-z0-9_-]{0,40}$/i.test(tool)) throw new Error(`"${part}": expected tool or tool:pattern (e.g. bash:git push*)`);
    if (pattern !== undefined && (!pattern || pattern.length > 200)) throw new Error(`"${part}": the pattern after ':' must be 1-200 characters`);
    out.push(pattern === undefined ? { tool } : { tool, pattern });
  }
  return out;
}

/** An optional text variable read by `parse`; what `parse` throws becomes the variable's message (`explain`). */
export const parsed = <T>(parse: (raw: string | undefined) => T, explain: (message: string) => string) =>
  z
    .string()
    .optional()
    .transform((raw, ctx) => {
      try {
        return parse(raw);
      } catch (e) {
        ctx.addIssue({ code: "custom", message: explain((e as Error).message) });
        return z.NEVER;
      }
    });

export const pairs = (what: string) => parsed(parsePairs, (m) => `expected ${what} as name=value pairs separated by commas: ${m}`);

/** `a,b,c` → ["a","b","c"] (empty → []). */
export const list = z
  .string()
  .optional()
  .transform((raw) => (raw ?? "").split(",").map((s) => s.trim()).filter(Boolean));

/** A REPOS clone URL with a user name or password in it (the secret would reach logs, pages and sandboxes). */
export function urlHasCredentials(url: string): boolean {
  if (/^[\w+.-]+:\/\/[^/@]*@/.test(url)) {
    try {
      const u = new URL(url);
      return !!(u.username || u.password);
    } catch {
      return true;
    }
  }
  return false;
}
