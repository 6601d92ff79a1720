/** Linear's parser (zod): signed webhooks of the wrong shape are refused in plain words before a handler reads them. */
import { describe, expect, it } from "vitest";
import { linearPayloadProblem } from "../../src/integrations/linear/payload-shape.ts";
import { agentSessionCreatedPayload, agentSessionPromptedPayload, commentCreatedPayload, issueAssignedPayload } from "../fakes/linear.ts";

const issue = { id: "issue-1", identifier: "ENG-1", title: "Fix it", teamId: "team-1" };
const org = { organizationId: "org-1" };

describe("Linear webhook shapes", () => {
  it("what Linear sends passes, with fields Deckhand does not read", () => {
    for (const p of [
      agentSessionCreatedPayload({ sessionId: "s1", issue, appUserId: "bot", ...org }),
      agentSessionPromptedPayload({ sessionId: "s1", issueId: issue.id, body: "go on", appUserId: "bot", ...org }),
      issueAssignedPayload({ issue, assigneeId: "bot", ...org }),
      commentCreatedPayload({ comment: { id: "c1", body: "hi", issueId: issue.id }, ...org }),
      { type: "OAuthApp", action: "revoked", organizationId: "org-1", oauthClientId: "x" },
      { ...agentSessionCreatedPayload({ sessionId: "s2", issue, appUserId: "bot", ...org }), somethingNew: [1, 2] },
    ]) expect(linearPayloadProblem(p)).toBeNull();
  });

  it("the wrong shapes get a message naming the field; nothing else is read", () => {
    const session = agentSessionCreatedPayload({ sessionId: "s1", issue, appUserId: "bot", ...org });
    const cases: [unknown, RegExp][] = [
      [[], /must be a JSON object/],
      [null, /must be a JSON object/],
      [{ action: "create" }, /^type: expected string/],
      [{ ...session, agentSession: "s1" }, /^agentSession: expected object/],
      [{ ...session, agentSession: { ...session.agentSession, id: 7 } }, /^agentSession\.id: expected string/],
      [{ ...session, agentSession: { ...session.agentSession, id: "" } }, /^agentSession\.id: /],
      [{ ...session, agentSession: { ...session.agentSession, issue: [] } }, /^agentSession\.issue: /],
      [{ ...session, action: 1 }, /^action: expected string/],
      [{ ...session, agentActivity: "x" }, /^agentActivity: /],
      [{ type: "Comment", action: "create", data: [] }, /^data: /],
      [{ type: "Issue", action: "update" }, /^data: /],
    ];
    for (const [p, want] of cases) expect(linearPayloadProblem(p), JSON.stringify(p).slice(0, 80)).toMatch(want);
  });
});
