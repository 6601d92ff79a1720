-- One conversations table for every surface: (surface, key) → the conversation's latest run and the question asked
-- there before a run could start. Replaces the Slack thread/ask keys in `deliveries`, the JSON queries on
-- `runs.source_ref` and the "which repo?" state kept in outbox payloads. Backfilled from them, so threads, sessions
-- and questions of an upgraded install keep routing.
CREATE TABLE "conversations" (
	"surface" text NOT NULL,
	"key" text NOT NULL,
	"run_id" text,
	"pending" jsonb,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "conversations_surface_key_pk" PRIMARY KEY("surface","key")
);
--> statement-breakpoint
ALTER TABLE "conversations" ADD CONSTRAINT "conversations_run_id_runs_id_fk" FOREIGN KEY ("run_id") REFERENCES "public"."runs"("id") ON DELETE set null ON UPDATE no action;
--> statement-breakpoint
-- Slack threads: `slack:thread:<channel>:<threadTs>` → the thread's latest run.
INSERT INTO "conversations" ("surface", "key", "run_id", "updated_at")
SELECT 'slack', substr(d."key", 14), d."run_id", d."received_at"
FROM "deliveries" d JOIN "runs" r ON r."id" = d."run_id"
WHERE d."key" LIKE 'slack:thread:%'
ON CONFLICT DO NOTHING;
--> statement-breakpoint
-- Slack "which repo?" asked in a thread with no run (`slack:ask:<channel>:<threadTs>`).
INSERT INTO "conversations" ("surface", "key", "pending", "updated_at")
SELECT 'slack', substr(d."key", 11), '{"kind":"repo"}'::jsonb, d."received_at"
FROM "deliveries" d
WHERE d."key" LIKE 'slack:ask:%'
ON CONFLICT DO NOTHING;
--> statement-breakpoint
DELETE FROM "deliveries" WHERE "key" LIKE 'slack:thread:%' OR "key" LIKE 'slack:ask:%';
--> statement-breakpoint
-- Linear agent sessions: `session:<agentSessionId>` → the session's latest run.
INSERT INTO "conversations" ("surface", "key", "run_id", "updated_at")
SELECT DISTINCT ON (r."source_ref"->>'agentSessionId') 'linear', 'session:' || (r."source_ref"->>'agentSessionId'), r."id", r."created_at"
FROM "runs" r
WHERE r."source" = 'linear' AND coalesce(r."source_ref"->>'agentSessionId', '') <> ''
ORDER BY r."source_ref"->>'agentSessionId', r."created_at" DESC
ON CONFLICT DO NOTHING;
--> statement-breakpoint
-- Linear issues: `issue:<issueId>` → the issue's latest run, of any session or the classic thread.
INSERT INTO "conversations" ("surface", "key", "run_id", "updated_at")
SELECT DISTINCT ON (r."source_ref"->>'issueId') 'linear', 'issue:' || (r."source_ref"->>'issueId'), r."id", r."created_at"
FROM "runs" r
WHERE r."source" = 'linear' AND coalesce(r."source_ref"->>'issueId', '') <> ''
ORDER BY r."source_ref"->>'issueId', r."created_at" DESC
ON CONFLICT DO NOTHING;
--> statement-breakpoint
-- Linear classic comment threads: `thread:<id of the run's thread comment>` → that run. The comment id is
-- stableUuid(`linear:<runId>:thread`) (src/integrations/linear/stable-uuid.ts), computed here the same way.
WITH h AS (
	SELECT r."id", r."created_at", substring(sha256(convert_to('deckhand:linear:' || r."id" || ':thread', 'UTF8')) FROM 1 FOR 16) AS b
	FROM "runs" r
	WHERE r."source" = 'linear' AND r."source_ref"->>'mode' = 'classic' AND coalesce(r."source_ref"->>'issueId', '') <> ''
), u AS (
	SELECT "id", "created_at", encode(set_byte(set_byte(b, 6, (get_byte(b, 6) & 15) | 80), 8, (get_byte(b, 8) & 63) | 128), 'hex') AS x FROM h
)
INSERT INTO "conversations" ("surface", "key", "run_id", "updated_at")
SELECT 'linear', 'thread:' || substr(x, 1, 8) || '-' || substr(x, 9, 4) || '-' || substr(x, 13, 4) || '-' || substr(x, 17, 4) || '-' || substr(x, 21, 12), "id", "created_at"
FROM u
ON CONFLICT DO NOTHING;
--> statement-breakpoint
-- Linear "which repo?" asked in an agent session before any run (the elicitation's outbox payload kept it).
INSERT INTO "conversations" ("surface", "key", "pending", "updated_at")
SELECT DISTINCT ON (n."payload"->>'sessionId') 'linear', 'session:' || (n."payload"->>'sessionId'), jsonb_build_object('kind', 'repo', 'start', n."payload"->'pending'), n."created_at"
FROM "notifications" n
WHERE n."surface" = 'linear' AND n."kind" = 'activity.elicitation' AND jsonb_typeof(n."payload"->'pending') = 'object' AND coalesce(n."payload"->>'sessionId', '') <> ''
ORDER BY n."payload"->>'sessionId', n."id" DESC
ON CONFLICT DO NOTHING;
--> statement-breakpoint
-- ... and on an issue's classic comments, when no classic run started there since.
INSERT INTO "conversations" ("surface", "key", "pending", "updated_at")
SELECT DISTINCT ON (n."payload"->>'issueId') 'linear', 'issue:' || (n."payload"->>'issueId'), jsonb_build_object('kind', 'repo', 'start', n."payload"->'pending'), n."created_at"
FROM "notifications" n
WHERE n."surface" = 'linear' AND n."kind" = 'comment.ask' AND jsonb_typeof(n."payload"->'pending') = 'object' AND coalesce(n."payload"->>'issueId', '') <> ''
	AND NOT EXISTS (SELECT 1 FROM "runs" r WHERE r."source" = 'linear' AND r."source_ref"->>'mode' = 'classic' AND r."source_ref"->>'issueId' = n."payload"->>'issueId')
ORDER BY n."payload"->>'issueId', n."id" DESC
ON CONFLICT ("surface", "key") DO UPDATE SET "pending" = EXCLUDED."pending";
