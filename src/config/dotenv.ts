/**
 * `.env` in the working directory: read once at start-up, before the configuration is parsed. Variables already
 * set in the real environment win (a shell export, a service manager, a container's `environment:`).
 */
import fs from "node:fs";
import path from "node:path";
import { parseEnv } from "node:util";

/** Pure: the variables from `text` that `env` does not already set (an empty string counts as set). */
export function dotEnvAdditions(text: string, env: NodeJS.ProcessEnv): Record<string, string> {
  const parsed = parseEnv(text) as Record<string, string>;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(parsed)) if (!Object.hasOwn(env, k)) out[k] = v;
  return out;
}

/** Load `<cwd>/.env` into `env` (real variables win). Returns the file loaded, or null when there is none. */
export function loadDotEnv(cwd = process.cwd(), env: NodeJS.ProcessEnv = process.env): string | null {
  const file = path.join(cwd, ".env");
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    return null;
  }
  Object.assign(env, dotEnvAdditions(text, env));
  return file;
}
