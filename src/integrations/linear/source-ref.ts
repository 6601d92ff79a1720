/** What a Linear run remembers about where it came from (stored in `runs.source_ref`). */
import type { Run } from "../../db/schema.ts";

import type { LinearSourceRef } from "../../runs/model.ts";

export type { LinearSourceRef };

export function linearRef(run: Pick<Run, "source" | "sourceRef">): LinearSourceRef | null {
  if (run.source !== "linear") return null;
  const r = run.sourceRef as Partial<LinearSourceRef>;
  if (!r?.workspaceId || (r.mode !== "agent" && r.mode !== "classic")) return null;
  if (r.mode === "agent" && !r.agentSessionId) return null;
  if (r.mode === "classic" && !r.issueId) return null;
  return { ...r, issueId: r.issueId ?? "" } as LinearSourceRef;
}

/** The ordering key of everything said about a run: one agent session, or one issue's comment thread. */
export function orderingKeyOf(ref: LinearSourceRef): string {
  return ref.mode === "agent" ? `linear:session:${ref.agentSessionId}` : `linear:issue:${ref.issueId}`;
}
