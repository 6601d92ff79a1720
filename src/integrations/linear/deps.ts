/** What the Linear inbound handlers need from the app. */
import type { Config } from "../../config/config.ts";
import type { Db } from "../../db/database.ts";
import type { ConversationStore } from "../../intake/conversations.ts";
import type { Logger } from "../../log/logger.ts";
import type { Outbox } from "../../notify/outbox.ts";
import type { RunService } from "../../runs/run-service.ts";
import type { LinearClients } from "./linear-clients.ts";

export interface LinearDeps {
  db: Db;
  config: Config;
  service: RunService;
  outbox: Outbox;
  clients: LinearClients;
  /** Which run a session, issue or comment thread belongs to, and the "which repo?" asked there. */
  conversations: ConversationStore;
  log: Logger;
}
