/**
 * Configuration and logs as a user meets them: `.env` in the working directory (real variables win), help for
 * every command without a stack trace, --version, and readable logs on a terminal versus JSON elsewhere.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { COMMANDS } from "../../src/cli/help.ts";
import { dotEnvAdditions } from "../../src/config/dotenv.ts";
import { chooseLogFormat, createLogger } from "../../src/log/logger.ts";
import { startupSummary } from "../../src/server/serve.ts";
import { freePort, tmpDir } from "../helpers/harness.ts";

const BIN = path.resolve(import.meta.dirname, "../../bin/deckhand.mjs");

function cli(args: string[], env: Record<string, string>, cwd?: string): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, env: { PATH: process.env.PATH!, HOME: process.env.HOME!, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (c) => (out += c));
    child.stderr.on("data", (c) => (err += c));
    child.on("close", (code) => resolve({ code: code ?? 1, out, err }));
  });
}

describe(".env", () => {
  it("is read from the working directory, and real environment variables win over it", async () => {
    const dir = tmpDir();
    const [fromFile, fromEnv] = [await freePort(), await freePort()];
    fs.writeFileSync(path.join(dir, ".env"), `# comment\nDECKHAND_URL=http://127.0.0.1:${fromFile}\nAPI_TOKEN="dotenv-token-0123456789"\n`);
    const byFile = await cli(["runs"], {}, dir);
    expect(byFile.code).toBe(2);
    expect(byFile.err).toContain(`Cannot reach the Deckhand server at http://127.0.0.1:${fromFile}`);
    const byEnv = await cli(["runs"], { DECKHAND_URL: `http://127.0.0.1:${fromEnv}` }, dir);
    expect(byEnv.err).toContain(`at http://127.0.0.1:${fromEnv}`);
    // A bad value in .env is reported by name like any other.
    fs.writeFileSync(path.join(dir, ".env"), "PORT=seventy\n");
    const bad = await cli(["runs"], {}, dir);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/PORT/);
  }, 120_000);

  it("adds only what the environment does not set (pure)", () => {
    expect(dotEnvAdditions("A=1\nB='two words'\nexport C=3\nD=x", { A: "0", D: "" })).toEqual({ B: "two words", C: "3" });
  });
});

describe("CLI help", () => {
  it("every command has help without a stack trace; --version; unknown options are a usage error", async () => {
    for (const cmd of Object.keys(COMMANDS)) {
      const r = await cli([cmd, "--help"], {});
      expect(r.code, `${cmd}: ${r.err}`).toBe(0);
      expect(r.out).toMatch(new RegExp(`^Usage: deckhand ${cmd}`));
      expect(r.err).toBe("");
    }
    const v = await cli(["--version"], {});
    expect(v.out).toMatch(/^deckhand \d+\.\d+\.\d+\n$/);
    const bad = await cli(["runs", "--colour"], {});
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/Unknown option '--colour'/);
    expect(bad.err).toMatch(/Usage: deckhand runs/);
    expect(bad.err).not.toMatch(/at .*\.(ts|js):\d+/);
  }, 300_000);
});

describe("logs", () => {
  const capture = () => {
    let text = "";
    const stream = new Writable({ write: (c, _e, cb) => ((text += c), cb()) });
    return { stream, text: () => text };
  };

  it("are readable lines on a terminal and JSON otherwise; LOG_FORMAT decides when set", () => {
    expect(chooseLogFormat(undefined, true)).toBe("pretty");
    expect(chooseLogFormat(undefined, false)).toBe("json");
    expect(chooseLogFormat("json", true)).toBe("json");
    expect(chooseLogFormat("pretty", false)).toBe("pretty");
    const pretty = capture();
    createLogger({ format: "pretty", destination: pretty.stream as never }).info({ runId: "r-1" }, "run created");
    expect(pretty.text()).toMatch(/INFO.*run created/);
    expect(pretty.text()).toContain('runId: "r-1"');
    expect(() => JSON.parse(pretty.text())).toThrow();
    const json = capture();
    createLogger({ format: "json", destination: json.stream as never }).info({ runId: "r-1", token: "secret" }, "run created");
    expect(JSON.parse(json.text())).toMatchObject({ msg: "run created", runId: "r-1", token: "[redacted]" });
  });

  it("the start-up summary is a short list", () => {
    const s = startupSummary({ url: "http://127.0.0.1:3000", role: "all", lines: ["database: Postgres", "model: m"], tokenNote: "API_TOKEN" });
    expect(s.split("\n")).toEqual(["Deckhand is listening on http://127.0.0.1:3000 (role: web + worker)", "  • database: Postgres", "  • model: m", "  • CLI token: API_TOKEN"]);
  });
});
