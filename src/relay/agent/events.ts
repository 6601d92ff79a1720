/**
 * Pure decisions about OpenCode events: which to forward, whose session they belong to, and how to make sure the
 * final text of every text part is forwarded even though streaming deltas (`message.part.delta`) are not.
 */

/** A raw event from OpenCode's `GET /event` stream. */
export interface OpencodeEvent {
  id?: string;
  type: string;
  properties?: Record<string, any>;
}

/** Events that carry nothing the backend needs (streaming deltas are folded into full-text updates instead). */
export const NOISE_EVENTS = new Set([
  "server.heartbeat",
  "server.connected",
  "file.watcher.updated",
  "message.part.delta",
  // Instance start-up chatter (about 50 per run, no session): plugin and catalog registration.
  "plugin.added",
  "catalog.updated",
  "reference.updated",
  "integration.updated",
]);

/** The session an event belongs to, if any. */
export function sessionIdOf(ev: OpencodeEvent): string | undefined {
  const p = ev.properties;
  if (!p) return undefined;
  const id = p.sessionID ?? p.info?.sessionID ?? p.part?.sessionID;
  return typeof id === "string" ? id : undefined;
}

/** Forward an event? Noise is dropped; so is anything of another session. Events without a session pass. */
export function shouldForward(ev: OpencodeEvent, sessionId: string | undefined): boolean {
  if (NOISE_EVENTS.has(ev.type)) return false;
  if (ev.type.startsWith("session.next.") && ev.type.endsWith(".delta")) return false;
  const sid = sessionIdOf(ev);
  return sid === undefined || sid === sessionId;
}

/** The message of a `session.error` event (`error.data.message`, else the error's name). */
export function sessionErrorMessage(ev: OpencodeEvent): string | undefined {
  const e = ev.properties?.error;
  if (!e) return undefined;
  const msg = e.data?.message ?? e.message ?? e.name;
  return typeof msg === "string" && msg ? msg : "unknown error";
}

/** Is this `message.updated` the end of an assistant message? */
export function isAssistantMessageDone(ev: OpencodeEvent): boolean {
  const info = ev.properties?.info;
  return ev.type === "message.updated" && info?.role === "assistant" && !!(info.time?.completed || info.error || info.finish);
}

interface TrackedPart {
  part: Record<string, any>; // last full part seen in message.part.updated
  text: string; // text including deltas received since
  forwardedText: string; // text of the last forwarded (or synthesized) update
}

/**
 * Follows text parts: `message.part.updated` carries the full text, `message.part.delta` only additions.
 * OpenCode normally ends a text part with a full update; if that update never comes (stream hiccup, abort),
 * `flush()` returns a synthetic full update for each part whose deltas were never forwarded.
 */
export class TextTracker {
  private parts = new Map<string, TrackedPart>();

  /** Feed every event of our session (before deciding to forward it). */
  observe(ev: OpencodeEvent): void {
    const p = ev.properties;
    if (ev.type === "message.part.updated" && p?.part?.type === "text" && typeof p.part.id === "string") {
      const text = typeof p.part.text === "string" ? p.part.text : "";
      this.parts.set(p.part.id, { part: p.part, text, forwardedText: text });
    } else if (ev.type === "message.part.delta" && p?.field === "text" && typeof p.partID === "string") {
      const t = this.parts.get(p.partID) ?? {
        part: { id: p.partID, messageID: p.messageID, sessionID: p.sessionID, type: "text", text: "" },
        text: "",
        forwardedText: "",
      };
      t.text += typeof p.delta === "string" ? p.delta : "";
      this.parts.set(p.partID, t);
    } else if (ev.type === "message.part.removed" && typeof p?.partID === "string") {
      this.parts.delete(p.partID);
    }
  }

  /**
   * Full-text `message.part.updated` payloads for parts (of `messageId`, or all) whose latest text was not
   * forwarded yet; those parts are then forgotten.
   */
  flush(messageId?: string): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const [id, t] of this.parts) {
      if (messageId !== undefined && t.part.messageID !== messageId) continue;
      if (t.text !== t.forwardedText) {
        out.push({ sessionID: t.part.sessionID, part: { ...t.part, text: t.text }, synthetic: true });
      }
      this.parts.delete(id);
    }
    return out;
  }
}
