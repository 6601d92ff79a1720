/** What the Linear notifier sends: one outbox payload per Linear write. Each carries the workspace to pick a token. */

export type ActivityContent =
  | { type: "thought" | "elicitation" | "response" | "error"; body: string }
  | { type: "action"; action: string; parameter: string; result?: string };

/** Options a person picks from (Linear's `select` signal on an elicitation); the chosen one comes back as a prompt. */
export interface SelectSignal {
  signal: "select";
  signalMetadata: { options: { label: string; value: string }[] };
}

export type LinearPayload =
  | ({ op: "activity"; workspaceId: string; sessionId: string; id: string; content: ActivityContent; ephemeral?: boolean } & Partial<SelectSignal>)
  | {
      op: "session";
      workspaceId: string;
      sessionId: string;
      input: { plan?: unknown[]; addedExternalUrls?: { label: string; url: string }[]; externalLink?: string };
    }
  | { op: "start-issue"; workspaceId: string; issueId: string }
  | { op: "attach"; workspaceId: string; issueId: string; title: string; url: string; subtitle?: string }
  | { op: "comment"; workspaceId: string; issueId: string; id: string; body: string; parentId?: string };

/** Stored with an elicitation ("which repo?"), so the answer can start the run. */
export interface PendingStart {
  workspaceId: string;
  mode: "agent" | "classic";
  sessionId?: string;
  issueId: string;
  identifier: string;
  title: string;
  description?: string | null;
  url?: string | null;
  teamId?: string | null;
  promptContext?: string | null;
  request?: string | null;
  author?: string | null;
}
