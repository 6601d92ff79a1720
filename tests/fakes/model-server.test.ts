/**
 * Proves the scripted model server against REAL `opencode serve` (no mocks of OpenCode).
 * With RECORD_FIXTURES=1 the full `/event` stream of each scenario is written to tests/fixtures/*.events.jsonl.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createOpencodeClient, type OpencodeClient } from "@opencode-ai/sdk/v2";
import { startModelServer, scripts, parseModelRequest, type ModelServer } from "./model-server.ts";
import { freePort } from "../helpers/harness.ts";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../..");
const FIXTURES = path.join(ROOT, "tests/fixtures");
const OPENCODE_BIN = path.join(ROOT, "node_modules/opencode-linux-x64/bin/opencode");
const RECORD = process.env.RECORD_FIXTURES === "1";
const PASSWORD = "fake-model-test-pw";


async function waitFor<T>(what: string, fn: () => T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

type Ev = { type: string; properties: any };

describe("fake model server", () => {
  it("speaks the OpenAI wire format directly (stream, non-stream, models, errors, api key)", async () => {
    const srv = await startModelServer({ apiKey: "k1", handler: scripts.writeFile("a.txt", "x") });
    try {
      const h = { authorization: "Bearer k1", "content-type": "application/json" };
      const models = await (await fetch(`${srv.baseUrl}/models`, { headers: h })).json();
      expect(models.data[0].id).toBe("m");

      const bad = await fetch(`${srv.baseUrl}/chat/completions`, {
        method: "POST",
        headers: { ...h, authorization: "Bearer nope" },
        body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] }),
      });
      expect(bad.status).toBe(401);
      expect((await bad.json()).error).toMatchObject({ message: "Incorrect API key provided", code: "invalid_api_key" });

      const tools = [{ type: "function", function: { name: "write", parameters: {} } }];
      const nonStream = await (
        await fetch(`${srv.baseUrl}/chat/completions`, {
          method: "POST",
          headers: h,
          body: JSON.stringify({ model: "m", tools, messages: [{ role: "user", content: [{ type: "text", text: "go" }] }] }),
        })
      ).json();
      expect(nonStream.object).toBe("chat.completion");
      expect(nonStream.choices[0].finish_reason).toBe("tool_calls");
      const call = nonStream.choices[0].message.tool_calls[0];
      expect(call.function.name).toBe("write");
      expect(JSON.parse(call.function.arguments)).toEqual({ filePath: "a.txt", content: "x" });

      const streamed = await fetch(`${srv.baseUrl}/chat/completions`, {
        method: "POST",
        headers: h,
        body: JSON.stringify({
          model: "m",
          stream: true,
          stream_options: { include_usage: true },
          tools,
          messages: [
            { role: "user", content: "go" },
            { role: "assistant", content: "", tool_calls: [{ id: "c1", type: "function", function: { name: "write", arguments: "{}" } }] },
            { role: "tool", tool_call_id: "c1", content: "ok" },
          ],
        }),
      });
      expect(streamed.headers.get("content-type")).toMatch(/text\/event-stream/);
      const lines = (await streamed.text()).split("\n\n").filter(Boolean);
      expect(lines.at(-1)).toBe("data: [DONE]");
      const chunks = lines.slice(0, -1).map((l) => JSON.parse(l.slice(6)));
      expect(chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("")).toBe("Wrote a.txt.");
      expect(chunks.find((c) => c.choices[0]?.finish_reason)?.choices[0].finish_reason).toBe("stop");
      expect(chunks.at(-1).usage.total_tokens).toBeGreaterThan(0);

      expect(srv.requests).toHaveLength(2);
      expect(srv.requests[0]!.userTexts).toEqual(["go"]);
      expect(srv.requests[1]!.toolResults).toEqual([{ name: "write", toolCallId: "c1", content: "ok" }]);
      expect(srv.requests[1]!.lastRole).toBe("tool");
    } finally {
      await srv.close();
    }
  });

  it("recognises OpenCode's title request", () => {
    const r = parseModelRequest({
      messages: [
        { role: "system", content: "You are a title generator. You output ONLY a thread title." },
        { role: "user", content: "Generate a title for this conversation:\n" },
        { role: "user", content: "hello" },
      ],
    });
    expect(r.isTitleRequest).toBe(true);
    expect(parseModelRequest({ messages: [{ role: "user", content: "hello" }], tools: [] }).isTitleRequest).toBe(false);
  });
});

describe("fake model server driving real opencode serve", () => {
  let fake: ModelServer;
  let tmp: string;
  let project: string;
  let proc: ChildProcess | undefined;
  let client: OpencodeClient;
  let baseUrl: string;
  const events: Ev[] = [];
  const eventsAbort = new AbortController();
  let readyMs = 0;

  function record(name: string, from: number): void {
    if (!RECORD) return;
    fs.mkdirSync(FIXTURES, { recursive: true });
    const lines = events.slice(from).map((e) => JSON.stringify(e));
    fs.writeFileSync(path.join(FIXTURES, name), lines.join("\n") + "\n");
  }
  const sessionEvents = (sessionID: string, from = 0) =>
    events.slice(from).filter((e) => e.properties?.sessionID === sessionID || e.properties?.info?.sessionID === sessionID);

  async function newSession(): Promise<string> {
    const res = await client.session.create({});
    expect(res.error).toBeUndefined();
    return res.data!.id;
  }

  beforeAll(async () => {
    fake = await startModelServer();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "deckhand-oc-"));
    project = path.join(tmp, "project");
    fs.mkdirSync(project);
    const git = (...args: string[]) =>
      execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@example.com", ...args], { cwd: project, stdio: "ignore" });
    git("init", "-q");
    fs.writeFileSync(path.join(project, "README.md"), "# test\n");
    git("add", ".");
    git("commit", "-qm", "init");

    const port = await freePort();
    baseUrl = `http://127.0.0.1:${port}`;
    const config = {
      $schema: "https://opencode.ai/config.json",
      provider: {
        local: {
          npm: "@ai-sdk/openai-compatible",
          name: "Fake",
          options: { baseURL: fake.baseUrl, apiKey: "test-key" },
          models: { m: { name: "m", tool_call: true } },
        },
      },
      model: "local/m",
      // Object form: rules are matched last-wins, so "*" must come BEFORE "question".
      permission: { "*": "allow", question: "deny" },
    };
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      XDG_CONFIG_HOME: path.join(tmp, "config"),
      XDG_DATA_HOME: path.join(tmp, "data"),
      XDG_STATE_HOME: path.join(tmp, "state"),
      XDG_CACHE_HOME: path.join(tmp, "cache"),
      OPENCODE_DISABLE_MODELS_FETCH: "1",
      OPENCODE_DISABLE_AUTOUPDATE: "1",
      OPENCODE_DISABLE_LSP_DOWNLOAD: "1",
      OPENCODE_DISABLE_SHARE: "1",
      OPENCODE_SERVER_PASSWORD: PASSWORD,
      OPENCODE_CONFIG_CONTENT: JSON.stringify(config),
    };
    delete env.OPENCODE_CONFIG;
    delete env.OPENCODE_PERMISSION;
    const t0 = Date.now();
    proc = spawn(OPENCODE_BIN, ["serve", "--port", String(port), "--hostname", "127.0.0.1", "--pure"], {
      cwd: project,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`opencode did not start in 20 s:\n${output}`)), 20_000);
      const onData = (d: Buffer) => {
        output += d.toString();
        if (output.includes("opencode server listening")) {
          clearTimeout(timer);
          resolve();
        }
      };
      proc!.stdout!.on("data", onData);
      proc!.stderr!.on("data", onData);
      proc!.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`opencode exited (${code}) before listening:\n${output}`));
      });
    });
    readyMs = Date.now() - t0;
    console.log(`opencode serve ready in ${readyMs} ms`);

    client = createOpencodeClient({
      baseUrl,
      directory: project,
      headers: { Authorization: `Basic ${Buffer.from(`opencode:${PASSWORD}`).toString("base64")}` },
    });
    const sub = await client.event.subscribe({}, { signal: eventsAbort.signal });
    void (async () => {
      try {
        for await (const e of sub.stream) events.push(e as Ev);
      } catch {
        /* aborted in afterAll */
      }
    })();
    await waitFor("server.connected", () => events.some((e) => e.type === "server.connected"));
  }, 30_000);

  afterAll(async () => {
    eventsAbort.abort();
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      const t0 = Date.now();
      const exited = new Promise<void>((r) => proc!.once("exit", () => r()));
      proc.kill("SIGTERM");
      const grace = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 2_000));
      if ((await Promise.race([exited, grace])) === "timeout") {
        proc.kill("SIGKILL");
        await exited;
        console.log(`opencode ignored SIGTERM for 2 s; SIGKILLed`);
      } else {
        console.log(`opencode exited ${Date.now() - t0} ms after SIGTERM`);
      }
    }
    await fake?.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("rejects requests without the server password", async () => {
    const res = await fetch(`${baseUrl}/session/status`);
    expect(res.status).toBe(401);
  });

  it("write-file script: tool call, file on disk, tool result seen, session.idle", async () => {
    const from = events.length;
    const reqFrom = fake.requests.length;
    fake.setHandler(scripts.writeFile("hello.txt", "hi\n"));
    const sessionID = await newSession();
    const t0 = Date.now();
    const res = await client.session.promptAsync({ sessionID, parts: [{ type: "text", text: "Create hello.txt" }] });
    expect(res.error).toBeUndefined();
    expect(res.response.status).toBe(204);
    await waitFor("session.idle", () => sessionEvents(sessionID, from).some((e) => e.type === "session.idle"), 20_000);
    console.log(`write-file: promptAsync -> session.idle in ${Date.now() - t0} ms`);

    expect(fs.readFileSync(path.join(project, "hello.txt"), "utf8")).toBe("hi\n");
    const mine = fake.requests.slice(reqFrom);
    expect(mine.length).toBe(2);
    expect(mine[0]!.toolNames).toContain("write");
    expect(mine[0]!.toolNames).not.toContain("question"); // denied in config
    expect(mine[0]!.userTexts).toEqual(["Create hello.txt"]);
    expect(mine[1]!.lastRole).toBe("tool");
    expect(mine[1]!.toolResults[0]).toMatchObject({ name: "write" });
    expect(mine[1]!.toolResults[0]!.content).toMatch(/success/i);
    expect(fake.titleRequests.length).toBeGreaterThanOrEqual(1);

    const mineEv = sessionEvents(sessionID, from);
    const toolDone = mineEv.find(
      (e) => e.type === "message.part.updated" && e.properties.part.type === "tool" && e.properties.part.state.status === "completed",
    );
    expect(toolDone?.properties.part).toMatchObject({ tool: "write", state: { input: { filePath: "hello.txt", content: "hi\n" } } });
    const finalText = mineEv.filter((e) => e.type === "message.part.updated" && e.properties.part.type === "text").at(-1);
    expect(finalText?.properties.part.text).toBe("Wrote hello.txt.");
    const status = await client.session.status();
    expect(status.data?.[sessionID]?.type ?? "idle").toBe("idle");
    await new Promise((r) => setTimeout(r, 300)); // let trailing session.updated / session.diff arrive
    // First scenario: record from the very start of the subscription (server.connected, instance start-up events).
    record("opencode-write-file.events.jsonl", 0);
  });

  it("steering: a promptAsync while the model is busy is included in a later model request; one idle", async () => {
    const from = events.length;
    const reqFrom = fake.requests.length;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const FIRST = "Start the long task";
    const SECOND = "Also mention the steering note";
    fake.setHandler(async (req) => {
      if (!req.userTexts.includes(SECOND)) {
        await gate; // the model is "thinking" until the test releases it
        return { text: "First part done." };
      }
      return { text: "Handled the steering note too." };
    });
    const sessionID = await newSession();
    await client.session.promptAsync({ sessionID, parts: [{ type: "text", text: FIRST }] });
    await waitFor("held model request", () => fake.requests.length > reqFrom);
    const steer = await client.session.promptAsync({ sessionID, parts: [{ type: "text", text: SECOND }] });
    expect(steer.response.status).toBe(204);
    const busy = await client.session.status();
    expect(busy.data?.[sessionID]?.type).toBe("busy");
    await new Promise((r) => setTimeout(r, 200));
    release();
    await waitFor("session.idle", () => sessionEvents(sessionID, from).some((e) => e.type === "session.idle"), 20_000);
    await new Promise((r) => setTimeout(r, 500)); // a second idle would show up here

    const mine = fake.requests.slice(reqFrom);
    expect(mine[0]!.userTexts).toEqual([FIRST]);
    const later = mine.slice(1).find((r) => r.userTexts.includes(SECOND));
    expect(later).toBeDefined();
    expect(later!.userTexts).toEqual([FIRST, SECOND]);
    const idles = sessionEvents(sessionID, from).filter((e) => e.type === "session.idle");
    expect(idles).toHaveLength(1);
    const texts = sessionEvents(sessionID, from)
      .filter((e) => e.type === "message.part.updated" && e.properties.part.type === "text" && e.properties.part.time?.end)
      .map((e) => e.properties.part.text);
    expect(texts).toContain("Handled the steering note too.");
    record("opencode-steer.events.jsonl", from);
  });

  it("a 401 from the model surfaces as session.error", async () => {
    const from = events.length;
    fake.setHandler(() => ({ httpStatus: 401, message: "Incorrect API key provided" }));
    const sessionID = await newSession();
    await client.session.promptAsync({ sessionID, parts: [{ type: "text", text: "Do anything" }] });
    const err = await waitFor(
      "session.error",
      () => sessionEvents(sessionID, from).find((e) => e.type === "session.error"),
      20_000,
    );
    await waitFor("session.idle", () => sessionEvents(sessionID, from).some((e) => e.type === "session.idle"), 10_000);
    console.log("401 ->", JSON.stringify(err.properties));
    expect(err.properties.error.name).toBe("APIError");
    expect(err.properties.error.data.message).toMatch(/Incorrect API key provided/);
    expect(err.properties.error.data.statusCode).toBe(401);
    await new Promise((r) => setTimeout(r, 300));
    record("opencode-model-401.events.jsonl", from);
  });
});
