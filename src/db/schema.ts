/**
 * Drizzle schema: the one description of what Deckhand stores. `npm run db:generate` turns changes into SQL
 * migrations in `migrations/`, applied at start-up on Postgres and PGlite alike.
 */
import { sql } from "drizzle-orm";
import {
  bigint,
  bigserial,
  doublePrecision,
  boolean,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
} from "drizzle-orm/pg-core";

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });

export const runs = pgTable(
  "runs",
  {
    id: text("id").primaryKey(),
    status: text("status").notNull(),
    statusReason: text("status_reason"),
    statusChangedAt: ts("status_changed_at").notNull().defaultNow(),
    /** Machine-readable failure class (e.g. "model_auth", "sandbox_silent"), for notifiers. */
    failureCode: text("failure_code"),
    repo: text("repo").notNull(),
    ref: text("ref"),
    branch: text("branch").notNull(),
    /** The commit the run started from (the diff's base). */
    baseCommit: text("base_commit"),
    prompt: text("prompt").notNull(),
    title: text("title").notNull(),
    /** cli | api | slack | linear | web */
    source: text("source").notNull(),
    /** Where the run came from and where to answer: Slack channel+thread, Linear session, ... */
    sourceRef: jsonb("source_ref").$type<Record<string, unknown>>().notNull().default(sql`'{}'::jsonb`),
    createdBy: text("created_by"),
    /** Secret part of the run page URL: unguessable, per run, revocable. */
    pageToken: text("page_token").notNull(),
    relayTokenHash: text("relay_token_hash"),
    sandboxProvider: text("sandbox_provider"),
    sandboxId: text("sandbox_id"),
    sandboxDestroyedAt: ts("sandbox_destroyed_at"),
    opencodeSessionId: text("opencode_session_id"),
    phases: jsonb("phases").$type<{ phase: string; at: string }[]>().notNull().default(sql`'[]'::jsonb`),
    attempts: integer("attempts").notNull().default(0),
    leaseOwner: text("lease_owner"),
    leaseExpiresAt: ts("lease_expires_at"),
    lastHeartbeatAt: ts("last_heartbeat_at"),
    lastActivityAt: ts("last_activity_at"),
    opencodeAlive: boolean("opencode_alive"),
    /** Highest contiguous event sequence stored. */
    lastEventSeq: integer("last_event_seq").notNull().default(0),
    /** Set when the relay reports the agent idle for all prompts up to this input seq: the result is owed. */
    idleInputSeq: integer("idle_input_seq"),
    /** Input seq covered by the last delivered result. */
    deliveredInputSeq: integer("delivered_input_seq").notNull().default(0),
    keepaliveUntil: ts("keepalive_until"),
    /** When the reconciler may try this run's failed action again (delivery, provisioning): its own column, not the lease. */
    retryAt: ts("retry_at"),
    /** Failed tries of the current action in a row; reset when an action succeeds. */
    retryAttempts: integer("retry_attempts").notNull().default(0),
    lastRetryError: text("last_retry_error"),
    /** The host (server machine / DATA_DIR) that created the run's local sandbox; only it may act on it. Null for remote sandboxes. */
    sandboxHost: text("sandbox_host"),
    result: jsonb("result").$type<Record<string, unknown>>(),
    diff: text("diff"),
    // Model gateway: the run's model, its model token (hashed), budget raises and usage measured by the gateway.
    /** Upstream model name chosen for this run (null: the configured default). */
    model: text("model"),
    modelTokenHash: text("model_token_hash"),
    /** USD added to RUN_BUDGET_USD by follow-ups (`budget=+5`). */
    budgetExtraUsd: doublePrecision("budget_extra_usd").notNull().default(0),
    usageInput: bigint("usage_input", { mode: "number" }).notNull().default(0),
    usageOutput: bigint("usage_output", { mode: "number" }).notNull().default(0),
    usageCacheRead: bigint("usage_cache_read", { mode: "number" }).notNull().default(0),
    usageCacheWrite: bigint("usage_cache_write", { mode: "number" }).notNull().default(0),
    /** Cost in millionths of a dollar (integers, so sums are exact). */
    usageCostMicros: bigint("usage_cost_micros", { mode: "number" }).notNull().default(0),
    modelRequests: integer("model_requests").notNull().default(0),
    createdAt: ts("created_at").notNull().defaultNow(),
    updatedAt: ts("updated_at").notNull().defaultNow(),
    startedAt: ts("started_at"),
    finishedAt: ts("finished_at"),
  },
  (t) => [
    index("runs_status_idx").on(t.status),
    uniqueIndex("runs_page_token_idx").on(t.pageToken),
    index("runs_created_at_idx").on(t.createdAt),
    uniqueIndex("runs_model_token_hash_idx").on(t.modelTokenHash),
    // One live run per Linear issue, across processes: a second session's run on a busy issue cannot be created
    // (it joins the first); two `created` arriving together cannot both start.
    uniqueIndex("runs_linear_issue_live_idx")
      .on(sql`(${t.sourceRef}->>'issueId')`)
      .where(sql`${t.source} = 'linear' AND coalesce(${t.sourceRef}->>'issueId', '') <> '' AND ${t.status} NOT IN ('closed', 'failed', 'cancelled')`),
  ],
);

/** One row per model request forwarded by the gateway: usage and cost, for sums per run, person, repo and day. */
export const modelUsage = pgTable(
  "model_usage",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    runId: text("run_id").notNull(),
    person: text("person"),
    repo: text("repo").notNull(),
    /** UTC day, YYYY-MM-DD. */
    day: text("day").notNull(),
    model: text("model").notNull(),
    /** HTTP status returned to the agent. */
    status: integer("status").notNull(),
    input: bigint("input", { mode: "number" }).notNull().default(0),
    output: bigint("output", { mode: "number" }).notNull().default(0),
    cacheRead: bigint("cache_read", { mode: "number" }).notNull().default(0),
    cacheWrite: bigint("cache_write", { mode: "number" }).notNull().default(0),
    costMicros: bigint("cost_micros", { mode: "number" }).notNull().default(0),
    durationMs: integer("duration_ms").notNull().default(0),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [index("model_usage_run_idx").on(t.runId), index("model_usage_day_person_idx").on(t.day, t.person), index("model_usage_day_repo_idx").on(t.day, t.repo)],
);

export const runEvents = pgTable(
  "run_events",
  {
    runId: text("run_id")
      .notNull()
      .references(() => runs.id, { onDelete: "cascade" }),
    seq: integer("seq").notNull(),
    type: text("type").notNull(),
    /** When it happened in the sandbox. */
    at: ts("at").notNull(),
    receivedAt: ts("received_at").notNull().defaultNow(),
    data: jsonb("data").$type<Record<string, unknown>>().notNull(),
  },
  (t) => [primaryKey({ columns: [t.runId, t.seq] })],
);

/** Prompts and commands queued for a run: the first prompt, follow-ups, stop. */
export const runInputs = pgTable(
  "run_inputs",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    runId: text("run_id")
      .notNull()
      .references(() => runs.id, { onDelete: "cascade" }),
    seq: integer("seq").notNull(),
    /** prompt | stop */
    kind: text("kind").notNull(),
    text: text("text"),
    author: text("author"),
    source: text("source").notNull(),
    createdAt: ts("created_at").notNull().defaultNow(),
    /** When the relay acknowledged it. */
    deliveredAt: ts("delivered_at"),
  },
  (t) => [uniqueIndex("run_inputs_run_seq_idx").on(t.runId, t.seq)],
);

/** Inbound webhook deliveries already seen (Slack event ids and message ts, Linear delivery ids, ...): dedupe keys only. */
export const deliveries = pgTable("deliveries", {
  key: text("key").primaryKey(),
  source: text("source").notNull(),
  runId: text("run_id"),
  receivedAt: ts("received_at").notNull().defaultNow(),
});

/**
 * One row per conversation on a surface (a Slack thread, a Linear agent session, issue or comment thread): its
 * latest run, and the question we asked there before a run could start ("which repo?", with what the run would
 * need). Written only by src/intake/conversations.ts.
 */
export const conversations = pgTable(
  "conversations",
  {
    surface: text("surface").notNull(),
    /** Slack `<channel>:<threadTs>`; Linear `session:<id>`, `issue:<id>`, `thread:<commentId>`. */
    key: text("key").notNull(),
    runId: text("run_id").references(() => runs.id, { onDelete: "set null" }),
    pending: jsonb("pending").$type<Record<string, unknown>>(),
    updatedAt: ts("updated_at").notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.surface, t.key] })],
);

/** Outbox of messages owed to a surface (Slack, Linear, GitHub): sent once, in order, surviving restarts. */
export const notifications = pgTable(
  "notifications",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    runId: text("run_id"),
    surface: text("surface").notNull(),
    /** Unique per message owed, so the same message is never queued twice. */
    dedupeKey: text("dedupe_key").notNull(),
    /** Messages of one ordering key are sent strictly in id order. */
    orderingKey: text("ordering_key").notNull(),
    kind: text("kind").notNull(),
    payload: jsonb("payload").$type<Record<string, unknown>>().notNull(),
    /** pending | sent | dead */
    state: text("state").notNull().default("pending"),
    attempts: integer("attempts").notNull().default(0),
    nextAttemptAt: ts("next_attempt_at").notNull().defaultNow(),
    /** progress | final | null: pending progress older than a pending final of its ordering key is dropped. */
    role: text("role"),
    /** The surface asked us to wait until then (retry-after): a recovered surface does not bring this row forward. */
    notBefore: ts("not_before"),
    lockedUntil: ts("locked_until"),
    lockedBy: text("locked_by"),
    sentAt: ts("sent_at"),
    response: jsonb("response").$type<Record<string, unknown>>(),
    lastError: text("last_error"),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("notifications_dedupe_idx").on(t.dedupeKey),
    index("notifications_pending_idx").on(t.state, t.nextAttemptAt),
    index("notifications_ordering_idx").on(t.orderingKey, t.id),
  ],
);

/** Per run and surface: what a notifier remembers (Slack status message ts, last rendered seq, ...). */
export const surfaceState = pgTable(
  "surface_state",
  {
    runId: text("run_id")
      .notNull()
      .references(() => runs.id, { onDelete: "cascade" }),
    surface: text("surface").notNull(),
    state: jsonb("state").$type<Record<string, unknown>>().notNull().default(sql`'{}'::jsonb`),
    updatedAt: ts("updated_at").notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.runId, t.surface] })],
);

/** Installed workspaces of an integration (e.g. Linear OAuth installs): token and app user per workspace. */
export const installations = pgTable(
  "installations",
  {
    surface: text("surface").notNull(),
    workspaceId: text("workspace_id").notNull(),
    accessToken: text("access_token").notNull(),
    appUserId: text("app_user_id"),
    data: jsonb("data").$type<Record<string, unknown>>().notNull().default(sql`'{}'::jsonb`),
    createdAt: ts("created_at").notNull().defaultNow(),
    updatedAt: ts("updated_at").notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.surface, t.workspaceId] })],
);

/**
 * Dashboard sessions (front door): the signed cookie names a row here; signing out deletes it, and rows made
 * under another API token (rotation) are deleted at start-up, so a copied cookie stops working.
 */
export const webSessions = pgTable(
  "web_sessions",
  {
    id: text("id").primaryKey(),
    name: text("name"),
    /** SHA-256 of a key derived from the API token in force at sign-in. */
    tokenHash: text("token_hash").notNull(),
    createdAt: ts("created_at").notNull().defaultNow(),
    expiresAt: ts("expires_at").notNull(),
  },
  (t) => [index("web_sessions_expires_idx").on(t.expiresAt)],
);

/** Server processes heartbeat here; a host is alive while one of its processes heartbeats. */
export const serverProcesses = pgTable(
  "server_processes",
  {
    id: text("id").primaryKey(),
    hostId: text("host_id").notNull(),
    hostname: text("hostname").notNull(),
    pid: integer("pid").notNull(),
    startedAt: ts("started_at").notNull().defaultNow(),
    heartbeatAt: ts("heartbeat_at").notNull().defaultNow(),
  },
  (t) => [index("server_processes_host_idx").on(t.hostId, t.heartbeatAt)],
);

/** The sandbox provider's circuit breaker, shared by every server process (evaluated by a pure function). */
export const providerBreaker = pgTable("provider_breaker", {
  provider: text("provider").primaryKey(),
  consecutiveFailures: integer("consecutive_failures").notNull().default(0),
  lastError: text("last_error"),
  openedAt: ts("opened_at"),
  trialUntil: ts("trial_until"),
  updatedAt: ts("updated_at").notNull().defaultNow(),
});

export type Run = typeof runs.$inferSelect;
export type NewRun = typeof runs.$inferInsert;
export type RunEventRow = typeof runEvents.$inferSelect;
export type RunInput = typeof runInputs.$inferSelect;
export type Notification = typeof notifications.$inferSelect;
export type ModelUsageRow = typeof modelUsage.$inferSelect;

/**
 * Per run: its events folded once, at ingest (src/events/fold.ts), up to `last_seq`, and how many events and bytes
 * it has stored (the per-run limits). Readers use this instead of re-reading the events.
 */
export const runDigests = pgTable("run_digests", {
  runId: text("run_id")
    .primaryKey()
    .references(() => runs.id, { onDelete: "cascade" }),
  lastSeq: integer("last_seq").notNull().default(0),
  eventCount: integer("event_count").notNull().default(0),
  eventBytes: bigint("event_bytes", { mode: "number" }).notNull().default(0),
  digest: jsonb("digest").$type<Record<string, unknown>>().notNull().default(sql`'{}'::jsonb`),
  updatedAt: ts("updated_at").notNull().defaultNow(),
});
