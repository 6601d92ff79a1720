/**
 * Linear's etiquette when work starts: an issue that is not started, completed or canceled moves to its team's
 * `started` state with the lowest position (states do not come sorted).
 */
import type { LinearClient } from "@linear/sdk";

export function lowestStarted<T extends { type: string; position: number }>(states: T[]): T | undefined {
  return [...states].filter((s) => s.type === "started").sort((a, b) => a.position - b.position)[0];
}

export async function moveIssueToStarted(client: LinearClient, issueId: string): Promise<{ moved: boolean; state?: string }> {
  const issue = await client.issue(issueId);
  const current = await issue.state;
  if (current && ["started", "completed", "canceled"].includes(current.type)) return { moved: false, state: current.name };
  const team = await issue.team;
  if (!team) return { moved: false };
  const states = await team.states({ filter: { type: { eq: "started" } } });
  const target = lowestStarted(states.nodes);
  if (!target) return { moved: false };
  await client.updateIssue(issueId, { stateId: target.id });
  return { moved: true, state: target.name };
}
