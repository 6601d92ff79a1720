/** The Follow-up form's decisions, without I/O: the modal, reading back its metadata and text, who may reach which run. */
import { describe, expect, it } from "vitest";
import { followUpEcho } from "../../src/integrations/slack/messages.ts";
import { FOLLOWUP_BLOCK, FOLLOWUP_INPUT, followUpModal, followUpProblem, followUpText, parseFollowUpMetadata } from "../../src/integrations/slack/followup.ts";

const target = { run: "r-abc123", channel: "C0PROJECT2", thread: "1700000000.000100" };
const run = (over: Record<string, unknown> = {}) => ({ source: "slack", status: "running", sourceRef: { channel: target.channel, threadTs: target.thread, messageTs: target.thread }, ...over }) as any;

describe("the follow-up form", () => {
  it("carries the run and its conversation in private_metadata, and reads them back only when well-formed", () => {
    const view = followUpModal(target, "Fix <the> login & co") as any;
    expect(parseFollowUpMetadata(view.private_metadata)).toEqual(target);
    expect(view.blocks[0].elements[0].text).toBe("Run: Fix &lt;the&gt; login &amp; co");
    expect(view.title.text.length).toBeLessThanOrEqual(24);
    for (const bad of [undefined, 42, "", "not json", "null", "[]", "x".repeat(3001), '{"run":"r1","channel":"C1"}', '{"__proto__":{"run":"r1","channel":"C0X","thread":"1.2"}}', JSON.stringify({ ...target, run: "../etc" }), JSON.stringify({ ...target, channel: "c0lower" }), JSON.stringify({ ...target, thread: "now" }), JSON.stringify({ ...target, run: 5 })]) {
      expect(parseFollowUpMetadata(bad), String(bad).slice(0, 60)).toBeNull();
    }
  });

  it("takes the typed text, trimmed; empty, missing, odd shapes and over 3000 characters are errors for the input", () => {
    const values = (value: unknown) => ({ [FOLLOWUP_BLOCK]: { [FOLLOWUP_INPUT]: { type: "plain_text_input", value } } });
    expect(followUpText(values("  add a test\n"))).toEqual({ text: "add a test" });
    expect(followUpText(values("x".repeat(3000)))).toEqual({ text: "x".repeat(3000) });
    expect(followUpText(values("x".repeat(3001)))).toEqual({ error: expect.stringMatching(/3001 characters; the limit is 3000/) });
    for (const bad of [values(""), values("  \n "), values(null), values(["a"]), values({ toString: "a" }), {}, null, "text", { [FOLLOWUP_BLOCK]: [] }, JSON.parse('{"__proto__":{"followup_text":{"text":{"value":"a"}}}}')]) {
      expect(followUpText(bad)).toEqual({ error: "Write what the agent should do next." });
    }
  });

  it("reaches only that conversation's run, and only while it can take input", () => {
    expect(followUpProblem(target, run())).toBeNull();
    expect(followUpProblem(target, run({ status: "idle" }))).toBeNull();
    expect(followUpProblem(target, null)).toMatch(/does not belong/);
    expect(followUpProblem(target, run({ sourceRef: { channel: "C0OTHER", threadTs: target.thread } }))).toMatch(/does not belong/);
    expect(followUpProblem(target, run({ sourceRef: { channel: target.channel, threadTs: "1700000000.000999" } }))).toMatch(/does not belong/);
    expect(followUpProblem(target, run({ source: "linear" }))).toMatch(/does not belong/);
    expect(followUpProblem(target, run({ status: "closed" }), "button")).toBe("This run is already closed: reply in its thread to start a new one.");
  });

  it("tells the thread who asked for what, inert", () => {
    expect(followUpEcho("Ada *L*", "ping <!channel> & <@U1>")).toBe(":inbox_tray: Follow-up from *Ada  L *: ping &lt;!channel&gt; &amp; &lt;@U1&gt;");
    expect(followUpEcho("Ada", "y".repeat(600))).toHaveLength(":inbox_tray: Follow-up from *Ada*: ".length + 500);
  });
});
