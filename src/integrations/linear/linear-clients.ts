/**
 * One LinearClient per workspace: the token stored by the OAuth install for the webhook's organization, else
 * LINEAR_ACCESS_TOKEN (an app token, actor=app), else LINEAR_API_KEY. LINEAR_API_URL points it elsewhere (tests).
 */
import { LinearClient } from "@linear/sdk";
import { and, eq } from "drizzle-orm";
import type { Config } from "../../config/config.ts";
import type { Db } from "../../db/database.ts";
import { installations } from "../../db/schema.ts";

export const LINEAR_SURFACE = "linear";

export class NoLinearTokenError extends Error {
  constructor(workspaceId: string) {
    super(`No Linear token for workspace ${workspaceId}: install the app (/linear/oauth/install) or set LINEAR_ACCESS_TOKEN / LINEAR_API_KEY`);
    this.name = "NoLinearTokenError";
  }
}

export interface Installation {
  workspaceId: string;
  accessToken: string;
  appUserId: string | null;
}

export class LinearClients {
  private readonly cache = new Map<string, LinearClient>();

  constructor(
    private readonly db: Db,
    private readonly config: Pick<Config, "LINEAR_ACCESS_TOKEN" | "LINEAR_API_KEY" | "LINEAR_API_URL" | "LINEAR_BOT_USER_ID">,
  ) {}

  get configured(): boolean {
    return !!(this.config.LINEAR_ACCESS_TOKEN || this.config.LINEAR_API_KEY);
  }

  async installation(workspaceId: string): Promise<Installation | null> {
    const [row] = await this.db
      .select()
      .from(installations)
      .where(and(eq(installations.surface, LINEAR_SURFACE), eq(installations.workspaceId, workspaceId)));
    return row ? { workspaceId: row.workspaceId, accessToken: row.accessToken, appUserId: row.appUserId } : null;
  }

  async forWorkspace(workspaceId: string | null | undefined): Promise<LinearClient> {
    const inst = workspaceId ? await this.installation(workspaceId) : null;
    if (inst) return this.client({ accessToken: inst.accessToken });
    if (this.config.LINEAR_ACCESS_TOKEN) return this.client({ accessToken: this.config.LINEAR_ACCESS_TOKEN });
    if (this.config.LINEAR_API_KEY) return this.client({ apiKey: this.config.LINEAR_API_KEY });
    throw new NoLinearTokenError(workspaceId ?? "(unknown)");
  }

  /** The user that means "Deckhand" in a workspace (classic assignment): the installed app user, else LINEAR_BOT_USER_ID. */
  async botUserIds(workspaceId: string | null | undefined): Promise<string[]> {
    const inst = workspaceId ? await this.installation(workspaceId) : null;
    return [inst?.appUserId, this.config.LINEAR_BOT_USER_ID].filter((x): x is string => !!x);
  }

  client(auth: { accessToken: string } | { apiKey: string }): LinearClient {
    const k = "accessToken" in auth ? `t:${auth.accessToken}` : `k:${auth.apiKey}`;
    let c = this.cache.get(k);
    if (!c) {
      c = new LinearClient({ ...auth, ...(this.config.LINEAR_API_URL ? { apiUrl: this.config.LINEAR_API_URL } : {}) });
      this.cache.set(k, c);
    }
    return c;
  }
}
