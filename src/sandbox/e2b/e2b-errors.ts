/**
 * E2B failures in plain words. A pure mapping from what the `e2b` SDK throws to our SandboxError: the message
 * reaches the user as the run's failure reason, `retryable` tells provisioning whether to try again.
 */
import { AuthenticationError, RateLimitError, SandboxError as E2BSdkError, SandboxNotFoundError, TimeoutError } from "e2b";
import { SandboxError } from "../provider.ts";

export interface E2BErrorContext {
  /** What we were doing, e.g. "creating a sandbox". */
  doing: string;
  template?: string;
  apiUrl?: string;
}

const statusOf = (e: unknown): number | undefined => {
  const s = (e as { statusCode?: unknown })?.statusCode;
  return typeof s === "number" ? s : undefined;
};

/** The SDK's message without its boilerplate prefix. */
function detail(e: Error): string {
  return e.message.replace(/^Unauthorized, please check your credentials\. - /, "").replace(/^Rate limit exceeded, please try again later - /, "");
}

export function explainE2BError(e: unknown, ctx: E2BErrorContext): SandboxError {
  if (e instanceof SandboxError) return e;
  const err = e instanceof Error ? e : new Error(String(e));
  const status = statusOf(err);
  if (err instanceof AuthenticationError || status === 401 || status === 403) {
    return new SandboxError("E2B rejected the API key: check E2B_API_KEY (create one at https://e2b.dev/dashboard?tab=keys)", "auth", false);
  }
  if (err instanceof RateLimitError || status === 429) {
    return new SandboxError(`E2B's limit was reached while ${ctx.doing} (${detail(err)}): too many sandboxes or requests at once; Deckhand will try again`, "quota", true);
  }
  if (err instanceof SandboxNotFoundError) {
    return new SandboxError("The E2B sandbox stopped: it was killed or reached the end of its lifetime", "not_found", false);
  }
  if (err instanceof TimeoutError) {
    if (/killed or reached its end of life|not running anymore/i.test(err.message)) {
      return new SandboxError("The E2B sandbox stopped: it was killed or reached the end of its lifetime", "not_found", false);
    }
    return new SandboxError(`E2B did not answer in time while ${ctx.doing}`, "unavailable", true);
  }
  if (status === 404 && ctx.template && /template/i.test(err.message)) {
    return new SandboxError(
      `The E2B sandbox template "${ctx.template}" does not exist for this API key: build it with \`deckhand e2b template\` or set E2B_TEMPLATE`,
      "template_not_found",
      false,
    );
  }
  if (err.name === "ServiceBusyError" || (status !== undefined && status >= 500)) {
    return new SandboxError(`E2B is having trouble (${err.message}) while ${ctx.doing}; Deckhand will try again`, "unavailable", true);
  }
  if (err instanceof E2BSdkError) {
    return new SandboxError(`E2B refused ${ctx.doing}: ${err.message}`, "e2b_error", status === undefined || status >= 500);
  }
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  if (err instanceof TypeError || cause?.code) {
    return new SandboxError(`Cannot reach E2B${ctx.apiUrl ? ` at ${ctx.apiUrl}` : ""} while ${ctx.doing}: ${cause?.message ?? err.message}`, "unavailable", true);
  }
  return new SandboxError(`E2B failed while ${ctx.doing}: ${err.message}`, "e2b_error", true);
}
