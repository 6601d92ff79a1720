/** What a Linear run remembers about where it came from (stored in `runs.source_ref`). */
import type { Run } from "../../db/schema.ts";

export interface LinearSourceRef {
  /** Linear organization id: picks the workspace's token. */
  workspaceId: string;
  /** "agent": an agent session (activities); "classic": an assignment to the bot user (comments). */
  mode: "agent" | "classic";
  agentSessionId?: string;
  issueId: string;
  identifier: string;
  issueUrl?: string;
  teamId?: string;
}

export function linearRef(run: Pick<Run, "source" | "sourceRef">): LinearSourceRef | null {
  if (run.source !== "linear") return null;
  const r = run.sourceRef as Partial<LinearSourceRef>;
  if (!r?.workspaceId || !r.issueId || (r.mode !== "agent" && r.mode !== "classic")) return null;
  if (r.mode === "agent" && !r.agentSessionId) return null;
  return r as LinearSourceRef;
}

/** The ordering key of everything said about a run: one agent session, or one issue's comment thread. */
export function orderingKeyOf(ref: LinearSourceRef): string {
  return ref.mode === "agent" ? `linear:session:${ref.agentSessionId}` : `linear:issue:${ref.issueId}`;
}
