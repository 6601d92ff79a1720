/** OpenCode's todo list → a Linear agent-session plan. Pure. */
import type { Todo } from "../../events/vocabulary.ts";

export type PlanStatus = "pending" | "inProgress" | "completed" | "canceled";
export interface PlanStep {
  content: string;
  status: PlanStatus;
}

const STATUS: Record<string, PlanStatus> = {
  pending: "pending",
  in_progress: "inProgress",
  inprogress: "inProgress",
  completed: "completed",
  done: "completed",
  cancelled: "canceled",
  canceled: "canceled",
};

/** `stopped`: the run ended early, so what was not done is canceled. */
export function todosToPlan(todos: Todo[], stopped = false): PlanStep[] {
  return todos
    .filter((t) => t && String(t.content ?? "").trim())
    .map((t) => {
      let status = STATUS[String(t.status ?? "").toLowerCase().replace(/[\s-]/g, "_")] ?? STATUS[String(t.status ?? "").toLowerCase()] ?? "pending";
      if (stopped && (status === "pending" || status === "inProgress")) status = "canceled";
      return { content: String(t.content).trim(), status };
    });
}
