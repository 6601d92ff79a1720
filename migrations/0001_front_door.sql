CREATE TABLE IF NOT EXISTS "web_sessions" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text,
	"token_hash" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE INDEX IF NOT EXISTS "web_sessions_expires_idx" ON "web_sessions" USING btree ("expires_at");
