/** Errors that become an HTTP answer with a message. */
export class HttpError extends Error {
  constructor(
    public readonly statusCode: number,
    message: string,
    public readonly details?: unknown,
  ) {
    super(message);
    this.name = "HttpError";
  }
}

import type { ZodError } from "zod";
import { RelayBatchError } from "../relay/receiver/relay-receiver.ts";
import { UnknownRepoError } from "../runs/repos.ts";
import { RunInputError, type RunInputProblem } from "../runs/run-service.ts";

const INPUT_STATUS: Record<RunInputProblem, number> = { invalid: 400, too_large: 413, not_found: 404, conflict: 409 };

/** Map domain errors to HTTP (the one place that does); anything else is thrown on as it is. */
export function toHttp(e: unknown): never {
  if (e instanceof UnknownRepoError) throw new HttpError(400, e.message, { allowed: e.allowed });
  if (e instanceof RunInputError) throw new HttpError(INPUT_STATUS[e.problem], e.message);
  if (e instanceof RelayBatchError) throw new HttpError(400, e.message);
  throw e;
}

export function zodMessage(e: ZodError): string {
  return e.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; ");
}
