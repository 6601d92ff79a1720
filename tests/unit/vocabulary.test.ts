import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { digest } from "../../src/events/fold.ts";
import { describeTool, explainError, type StoredEvent } from "../../src/events/vocabulary.ts";

const fixture = (name: string): StoredEvent[] =>
  fs
    .readFileSync(path.join(import.meta.dirname, "../fixtures", name), "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l, i) => {
      const e = JSON.parse(l);
      return { seq: i + 1, type: e.type, at: new Date(0), data: e.properties ?? {} };
    });

describe("event vocabulary (recorded OpenCode streams)", () => {
  it("turns a write-file turn into a readable timeline, the final answer and token usage", () => {
    const d = digest(fixture("opencode-write-file.events.jsonl"));
    const tools = d.timeline.filter((t) => t.kind === "tool");
    expect(tools).toHaveLength(1);
    expect(tools[0]).toMatchObject({ call: { tool: "write", status: "completed", verb: "Wrote", target: "hello.txt" } });
    expect(d.finalText).toBe("Wrote hello.txt.");
    expect(d.usage.input).toBeGreaterThan(0);
    expect(d.usage.output).toBeGreaterThan(0);
    expect(d.busy).toBe(false);
    expect(d.lastError).toBeNull();
    const messages = d.timeline.filter((t) => t.kind === "message");
    expect(messages.map((m) => (m as { role: string }).role)).toEqual(["user", "assistant"]);
  });
  it("explains a rejected API key in plain words", () => {
    const d = digest(fixture("opencode-model-401.events.jsonl"));
    expect(d.lastError).toEqual({ code: "model_auth", message: expect.stringMatching(/^The model provider rejected the API key/) });
    expect(d.finalText).toBeNull();
  });
  it("keeps both prompts of a steered turn", () => {
    const d = digest(fixture("opencode-steer.events.jsonl"));
    const users = d.timeline.filter((t) => t.kind === "message" && t.role === "user");
    expect(users.length).toBe(2);
  });
  it("shows what a running tool does", () => {
    const events: StoredEvent[] = [
      { seq: 1, type: "session.status", at: new Date(0), data: { status: { type: "busy" } } },
      { seq: 2, type: "message.part.updated", at: new Date(0), data: { part: { type: "tool", callID: "c1", tool: "bash", state: { status: "running", input: { command: "npm test\nmore" } } } } },
    ];
    expect(digest(events).currentAction).toBe("Running npm test");
  });
  it("describes tools and errors", () => {
    expect(describeTool("edit", { filePath: "/workspace/repo/src/app.ts" }, "running")).toEqual({ verb: "Editing", target: "src/app.ts" });
    expect(describeTool("grep", { pattern: "TODO" }, "completed")).toEqual({ verb: "Searched for", target: "TODO" });
    expect(explainError({ name: "APIError", data: { statusCode: 429, message: "slow down" } }).code).toBe("model_rate_limit");
    expect(explainError({ name: "APIError", data: { statusCode: 503 } }).message).toMatch(/failed \(503/);
  });
});
