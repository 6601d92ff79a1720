-- One live run per Linear issue, across every server process: a second session's run on an issue that is being
-- worked on cannot be created (it joins the first), so two `created` webhooks arriving together cannot both start.
CREATE UNIQUE INDEX "runs_linear_issue_live_idx" ON "runs" USING btree (("source_ref"->>'issueId')) WHERE "runs"."source" = 'linear' AND coalesce("runs"."source_ref"->>'issueId', '') <> '' AND "runs"."status" NOT IN ('closed', 'failed', 'cancelled');
