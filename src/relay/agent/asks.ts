/**
 * The agent's questions and approval asks, on the relay's side. With people answering (DECKHAND_ASK_PEOPLE) an ask
 * waits for the backend's `answer` command; otherwise it is settled at once (allow once / reject), because nothing
 * may wait on a human headlessly.
 */
import type { RelayCommand } from "../protocol.ts";
import { Backoff, sleep } from "./backoff.ts";
import { errMsg, log } from "./log.ts";
import { type OpencodeClient, OpencodeHttpError } from "./opencode.ts";

/** Settles a permission (allow once) or question (reject) at once, with a few retries. */
export async function settleAtOnce(oc: OpencodeClient, kind: "permission" | "question", id: string, signal: AbortSignal): Promise<void> {
  const backoff = new Backoff(200, 2_000);
  for (let attempt = 1; attempt <= 5 && !signal.aborted; attempt++) {
    try {
      if (kind === "permission") await oc.replyPermission(id, "once");
      else await oc.rejectQuestion(id);
      log("info", `${kind} answered`, { id, answer: kind === "permission" ? "once" : "reject" });
      return;
    } catch (err) {
      log("warn", `${kind} answer failed`, { id, attempt, error: errMsg(err) });
      await sleep(backoff.next(), signal);
    }
  }
}

/** Hands a person's answer to OpenCode. One already settled (answered elsewhere, timed out, aborted) is skipped. */
export async function applyAnswer(oc: OpencodeClient, a: NonNullable<RelayCommand["answer"]>, seq: number): Promise<void> {
  try {
    if (a.kind === "question") await oc.replyQuestion(a.requestId, a.answers);
    else await oc.replyPermission(a.requestId, a.reply);
    log("info", "answer delivered", { seq, requestId: a.requestId, kind: a.kind });
  } catch (err) {
    if (!(err instanceof OpencodeHttpError && err.status === 404)) throw err;
    log("info", "question already settled; answer skipped", { seq, requestId: a.requestId });
  }
}
