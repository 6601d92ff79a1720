/**
 * The agent's questions from the command line, against a real server (no sandbox: the test plays the relay and
 * reports the questions): `deckhand run` without a terminal prints the question and the `deckhand answer` command;
 * `deckhand answer` sends a label, an approval, and is refused for a question already answered; on a terminal,
 * `deckhand run` asks and reads the answer (an option's number) from stdin.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.ts";
import { hashToken } from "../../src/runs/tokens.ts";
import { startTestServer, type TestServer } from "../helpers/harness.ts";
import { until } from "../helpers/until.ts";
import { forceRunRow } from "../helpers/force-run-row.ts";

const BIN = path.resolve(import.meta.dirname, "../../bin/deckhand.mjs");

function cli(args: string[], env: Record<string, string>): { done: Promise<{ code: number; out: string; err: string }>; out: () => string } {
  const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH!, HOME: process.env.HOME!, USER: "ada", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (c) => (out += c));
  child.stderr.on("data", (c) => (err += c));
  const t = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const done = new Promise<{ code: number; out: string; err: string }>((resolve) =>
    child.on("close", (code) => {
      clearTimeout(t);
      resolve({ code: code ?? 1, out, err });
    }),
  );
  return { done, out: () => out };
}

describe("deckhand answer, and deckhand run asking", () => {
  let srv: TestServer;
  let env: Record<string, string>;
  let n = 0;
  const at = () => new Date().toISOString();

  beforeAll(async () => {
    srv = await startTestServer({ database: "pglite", noReconciler: true });
    env = { DECKHAND_URL: srv.url, API_TOKEN: srv.deckhand.apiToken, DATA_DIR: srv.dataDir };
  });
  afterAll(async () => srv?.close());

  /** The CLI's newest run, made `running` with events reported as its sandbox would. */
  async function playSandbox(prompt: string, events: { type: string; data: Record<string, unknown> }[]) {
    const run = await until("the CLI's run", async () => (await srv.deckhand.store.list({ source: "cli" })).find((r) => r.prompt === prompt));
    const token = `relay-token-cli-${++n}-0123456789`;
    await forceRunRow(srv.deckhand.store.db, run.id, { status: "running", relayTokenHash: hashToken(token) });
    const res = await fetch(`${srv.url}/relay/v1/runs/${run.id}/events`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ events: events.map((e, i) => ({ seq: i + 1, at: at(), ...e })) }),
    });
    expect(res.status).toBeLessThan(300);
    return run.id;
  }
  /** The turn ends (as the relay would report): the CLI stops following. */
  const finish = async (id: string) => {
    await forceRunRow(srv.deckhand.store.db, id, { status: "idle" });
    await srv.deckhand.bus.changed(id);
  };
  const answers = async (id: string) => (await srv.deckhand.store.inputs(id)).filter((i) => i.kind === "answer").map((i) => [JSON.parse(i.text!), i.author, i.source]);

  it("without a terminal: the question and how to answer; deckhand answer sends a label and an approval, once", async () => {
    const run = cli(["run", "--repo", "demo", "cli question"], env);
    const id = await playSandbox("cli question", [
      { type: "question.asked", data: { id: "que_cli1", questions: [{ question: "Which name?", options: [{ label: "alpha", description: "the first" }, { label: "beta" }] }] } },
      { type: "permission.asked", data: { id: "per_cli1", permission: "bash", patterns: ["git push origin main"] } },
    ]);
    await until("the question printed", () => run.out().includes("approval"));
    expect(run.out()).toContain("The agent asks: Which name?\n  1) alpha — the first\n  2) beta\n");
    expect(run.out()).toContain(`Answer with: deckhand answer ${id} --question que_cli1 "alpha"`);
    expect(run.out()).toContain(`The agent asks for approval to run: bash: git push origin main`);
    expect(run.out()).toContain(`Answer with: deckhand answer ${id} --question per_cli1 --approve`);

    const sent = await cli(["answer", id, "--question", "que_cli1", "beta"], env).done;
    expect(sent.code, sent.err).toBe(0);
    expect(sent.out).toBe("Sent to the agent (que_cli1): beta\n");
    const again = await cli(["answer", id, "--question", "que_cli1", "alpha"], env).done;
    expect(again.code).toBe(2);
    expect(again.err).toMatch(/409: question que_cli1 is not waiting for an answer/);
    const wrong = await cli(["answer", id, "--approve", "--reject"], env).done;
    expect(wrong.code).toBe(2);
    expect(wrong.err).toContain("Usage: deckhand answer");
    const approved = await cli(["answer", id, "--approve"], env).done; // the oldest open question: the approval
    expect(approved.out).toBe("Sent to the agent (per_cli1): Approved\n");
    expect(await answers(id)).toEqual([
      [{ kind: "question", requestId: "que_cli1", answers: [["beta"]] }, "ada", "cli"],
      [{ kind: "permission", requestId: "per_cli1", reply: "once" }, "ada", "cli"],
    ]);

    await finish(id);
    const r = await run.done;
    expect(r.code, r.err).toBe(0);
  }, 120_000);

  it("on a terminal: deckhand run prints the numbered options and sends the typed choice", async () => {
    Object.assign(process.env, env, { USER: "grace" });
    let printed = "";
    const out = Object.assign(new PassThrough(), { isTTY: true, write: (s: string) => ((printed += s), true) }) as unknown as NodeJS.WriteStream;
    const err = Object.assign(new PassThrough(), { write: (s: string) => ((printed += s), true) }) as unknown as NodeJS.WriteStream;
    const stdin = Object.assign(new PassThrough(), { isTTY: true });
    const exit = main(["run", "--repo", "demo", "tty question"], out, err, stdin);
    const id = await playSandbox("tty question", [{ type: "question.asked", data: { id: "que_tty1", questions: [{ question: "Which colour?", options: [{ label: "red" }, { label: "blue" }] }] } }]);
    await until("the prompt", () => printed.includes("Answer [1-2, or type your own]: "));
    expect(printed).toContain("The agent asks: Which colour?\n  1) red\n  2) blue\n");
    expect(printed).not.toContain("deckhand answer");
    stdin.write("2\n");
    await until("the answer sent", () => printed.includes("Sent to the agent: blue"));
    expect(await answers(id)).toEqual([[{ kind: "question", requestId: "que_tty1", answers: [["blue"]] }, "grace", "cli"]]);
    await finish(id);
    expect(await exit).toBe(0);
  }, 120_000);
});
