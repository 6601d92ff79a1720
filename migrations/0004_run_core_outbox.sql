-- Run core: retry timing in its own columns (not the lease), which host owns a run's local sandbox,
-- server processes heartbeating in the database, and the provider circuit breaker as a shared row.
ALTER TABLE "runs" ADD COLUMN "retry_at" timestamp with time zone;
--> statement-breakpoint
ALTER TABLE "runs" ADD COLUMN "retry_attempts" integer DEFAULT 0 NOT NULL;
--> statement-breakpoint
ALTER TABLE "runs" ADD COLUMN "last_retry_error" text;
--> statement-breakpoint
ALTER TABLE "runs" ADD COLUMN "sandbox_host" text;
--> statement-breakpoint
ALTER TABLE "notifications" ADD COLUMN "role" text;
--> statement-breakpoint
ALTER TABLE "notifications" ADD COLUMN "not_before" timestamp with time zone;
--> statement-breakpoint
CREATE TABLE "server_processes" (
	"id" text PRIMARY KEY NOT NULL,
	"host_id" text NOT NULL,
	"hostname" text NOT NULL,
	"pid" integer NOT NULL,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"heartbeat_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "server_processes_host_idx" ON "server_processes" USING btree ("host_id","heartbeat_at");
--> statement-breakpoint
CREATE TABLE "provider_breaker" (
	"provider" text PRIMARY KEY NOT NULL,
	"consecutive_failures" integer DEFAULT 0 NOT NULL,
	"last_error" text,
	"opened_at" timestamp with time zone,
	"trial_until" timestamp with time zone,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
