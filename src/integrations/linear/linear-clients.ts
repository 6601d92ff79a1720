/**
 * One LinearClient per workspace: the token stored by the OAuth install for the webhook's organization, else
 * LINEAR_ACCESS_TOKEN (an app token, actor=app), else LINEAR_API_KEY. LINEAR_API_URL points it elsewhere (tests).
 */
import { LinearClient } from "@linear/sdk";
import { and, eq } from "drizzle-orm";
import type { Config } from "../../config/config.ts";
import type { Db } from "../../db/database.ts";
import { installations } from "../../db/schema.ts";
import { needsRefresh, refreshInstallation } from "./refresh-token.ts";

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
  data: Record<string, unknown>;
}

export class LinearClients {
  private readonly cache = new Map<string, LinearClient>();
  private readonly refreshing = new Map<string, Promise<string>>();

  constructor(
    private readonly db: Db,
    private readonly config: Pick<Config, "LINEAR_ACCESS_TOKEN" | "LINEAR_API_KEY" | "LINEAR_API_URL" | "LINEAR_BOT_USER_ID" | "LINEAR_CLIENT_ID" | "LINEAR_CLIENT_SECRET">,
  ) {}

  get configured(): boolean {
    return !!(this.config.LINEAR_ACCESS_TOKEN || this.config.LINEAR_API_KEY);
  }

  async installation(workspaceId: string): Promise<Installation | null> {
    const [row] = await this.db
      .select()
      .from(installations)
      .where(and(eq(installations.surface, LINEAR_SURFACE), eq(installations.workspaceId, workspaceId)));
    return row ? { workspaceId: row.workspaceId, accessToken: row.accessToken, appUserId: row.appUserId, data: row.data ?? {} } : null;
  }

  async forWorkspace(workspaceId: string | null | undefined): Promise<LinearClient> {
    const inst = workspaceId ? await this.installation(workspaceId) : null;
    if (inst) return this.client({ accessToken: needsRefresh(inst.data) ? await this.refresh(inst) : inst.accessToken });
    if (this.config.LINEAR_ACCESS_TOKEN) return this.client({ accessToken: this.config.LINEAR_ACCESS_TOKEN });
    if (this.config.LINEAR_API_KEY) return this.client({ apiKey: this.config.LINEAR_API_KEY });
    throw new NoLinearTokenError(workspaceId ?? "(unknown)");
  }

  /** Users whose comments are Deckhand's own: the installed app user and LINEAR_BOT_USER_ID. */
  async botUserIds(workspaceId: string | null | undefined): Promise<string[]> {
    const inst = workspaceId ? await this.installation(workspaceId) : null;
    return [inst?.appUserId, this.config.LINEAR_BOT_USER_ID].filter((x): x is string => !!x);
  }

  /** One refresh per workspace at a time (Linear rotates the refresh token). */
  private refresh(inst: Installation): Promise<string> {
    let p = this.refreshing.get(inst.workspaceId);
    if (!p) {
      p = refreshInstallation(this.db, this.config, inst.workspaceId, inst.data).finally(() => this.refreshing.delete(inst.workspaceId));
      this.refreshing.set(inst.workspaceId, p);
    }
    return p;
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
