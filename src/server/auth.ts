/** API authentication: bearer API_TOKEN. Without API_TOKEN the server makes one and keeps it in DATA_DIR. */
import fs from "node:fs";
import path from "node:path";
import type { Config } from "../config/config.ts";
import { randomToken, safeEqual } from "../runs/tokens.ts";

export const apiTokenFile = (dataDir: string) => path.join(dataDir, "api-token");

/** The API token in force: API_TOKEN, or the one generated in DATA_DIR/api-token (created 0600 if missing). */
export function resolveApiToken(config: Pick<Config, "API_TOKEN" | "DATA_DIR">, create = true): string | null {
  if (config.API_TOKEN) return config.API_TOKEN;
  const file = apiTokenFile(config.DATA_DIR);
  try {
    return fs.readFileSync(file, "utf8").trim();
  } catch {
    if (!create) return null;
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const token = randomToken(24);
    fs.writeFileSync(file, `${token}\n`, { mode: 0o600 });
    return token;
  }
}

export function bearer(header: string | undefined): string | undefined {
  const m = /^Bearer\s+(.+)$/i.exec(header ?? "");
  return m?.[1]?.trim();
}

export function checkBearer(header: string | undefined, token: string): boolean {
  const got = bearer(header);
  return !!got && safeEqual(got, token);
}
