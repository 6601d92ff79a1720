/**
 * `deckhand` command line: serve, migrate, run, runs, status, logs, open, say, answer, stop, doctor, e2b.
 * The client commands talk to a running server over its API (DECKHAND_URL, default http://127.0.0.1:$PORT).
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import { parseArgs as nodeParseArgs, type ParseArgsConfig } from "node:util";
import { loadDotEnv } from "../config/dotenv.ts";
import { plainStatus } from "../runs/plain-status.ts";
import { commandHelp, usage } from "./help.ts";
import { ConfigError, loadConfig, type Config } from "../config/config.ts";
import { resolveApiToken } from "../server/auth.ts";
import type { RunView } from "../runs/run-view.ts";
import { exitCodeFor, fmtDuration, isDone, progressLine, summary, timelineKey, timelineLine } from "./progress.ts";
import type { TimelineItem } from "../events/vocabulary.ts";
import type { PendingQuestion } from "../events/questions.ts";
import { type AnswerBody, answerHint, askOnTty, questionText } from "./questions.ts";

class CliError extends Error {}

/** node:util parseArgs, with its errors (unknown option, missing value) turned into a usage message. */
function parseArgs<T extends ParseArgsConfig>(cmd: string, config: T) {
  try {
    return nodeParseArgs(config);
  } catch (e) {
    throw new CliError(`${(e as Error).message}\n${commandHelp(cmd) ?? usage()}`);
  }
}

function version(): string {
  const pkg = JSON.parse(fs.readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

function config(): Config {
  try {
    return loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) throw new CliError(e.message);
    throw e;
  }
}

interface Client {
  base: string;
  call<T>(method: string, path: string, body?: unknown): Promise<T>;
}

function client(c: Config): Client {
  const base = (process.env.DECKHAND_URL ?? `http://127.0.0.1:${c.PORT}`).replace(/\/+$/, "");
  const token = resolveApiToken(c, false);
  if (!token) throw new CliError(`No API token: set API_TOKEN, or start the server once so it writes ${c.DATA_DIR}/api-token`);
  return {
    base,
    async call<T>(method: string, path: string, body?: unknown): Promise<T> {
      let res: Response;
      try {
        res = await fetch(`${base}${path}`, {
          method,
          headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
          body: body ? JSON.stringify(body) : undefined,
        });
      } catch (e) {
        throw new CliError(`Cannot reach the Deckhand server at ${base} (${(e as Error).cause ? String((e as { cause: Error }).cause.message ?? (e as Error).cause) : (e as Error).message}). Is it running? Start it with: npm start`);
      }
      const text = await res.text();
      const json = text ? JSON.parse(text) : {};
      if (!res.ok) throw new CliError(`${res.status}: ${json.error ?? text}`);
      return json as T;
    },
  };
}

/** While following a run, Ctrl-C stops following, not the run: say so, and how to stop it. */
function noteOnInterrupt(id: string, err: NodeJS.WriteStream): () => void {
  const onInt = () => {
    err.write(`\nStopped following. The run goes on: deckhand stop ${id}\n`);
    process.exit(130);
  };
  process.once("SIGINT", onInt);
  return () => void process.off("SIGINT", onInt);
}

/** Print a run's timeline as it grows; returns when the run is finished (or at once with follow=false). */
async function logs(api: Client, id: string, out: NodeJS.WriteStream, followIt: boolean): Promise<RunView> {
  const printed = new Set<string>();
  let after = 0;
  for (;;) {
    const full = await api.call<RunView & { timeline: TimelineItem[] }>("GET", `/api/runs/${encodeURIComponent(id)}`);
    const done = isDone(full.status) || !followIt;
    // The newest item may still grow (a message streaming, a tool running): printed once it is settled.
    const settled = done ? full.timeline : full.timeline.slice(0, -1);
    for (const t of settled) {
      const key = timelineKey(t);
      if (printed.has(key)) continue;
      printed.add(key);
      const line = timelineLine(t);
      if (line) out.write(`${line}\n`);
    }
    if (done) return full;
    const r = await api.call<{ nextAfter: number }>("GET", `/api/runs/${encodeURIComponent(id)}/events?after=${after}&waitMs=15000`);
    after = r.nextAfter;
  }
}

/** Where `deckhand run` asks the agent's questions: on a TTY (stdin and stdout) it reads the answer. */
type Asker = ((q: PendingQuestion) => Promise<AnswerBody | null>) | null;

async function follow(api: Client, id: string, out: NodeJS.WriteStream, ask: Asker = null): Promise<RunView> {
  const tty = out.isTTY;
  const asked = new Set<string>();
  let paused = false;
  const spinner = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
  let after = 0;
  let lastLine = "";
  let view: RunView | null = null;
  let frame = 0;
  let timer: NodeJS.Timeout | null = null;
  const draw = () => {
    if (!view || paused) return;
    const line = progressLine(view);
    if (tty) out.write(`\r\x1b[2K${spinner[frame++ % spinner.length]} ${line}`);
  };
  if (tty) timer = setInterval(() => {
    if (view) view = { ...view, durationMs: view.durationMs + 100 };
    draw();
  }, 100);
  try {
    for (;;) {
      const r = await api.call<{ run: RunView; nextAfter: number }>("GET", `/api/runs/${id}/events?after=${after}&waitMs=15000`);
      after = r.nextAfter;
      view = r.run;
      const line = progressLine(view);
      if (!tty && line.replace(/^\[[^\]]*\] /, "") !== lastLine.replace(/^\[[^\]]*\] /, "")) out.write(`${line}\n`);
      lastLine = line;
      draw();
      if (isDone(view.status)) break;
      for (const q of view.questions ?? []) {
        if (asked.has(q.id)) continue;
        asked.add(q.id);
        if (!ask) {
          out.write(`${questionText(q)}\n${answerHint(id, q)}\n`);
          continue;
        }
        paused = true;
        if (tty) out.write("\r\x1b[2K");
        try {
          const body = await ask(q);
          if (!body) continue;
          const r = await api.call<{ answered: string }>("POST", `/api/runs/${encodeURIComponent(id)}/answers`, { ...body, author: process.env.USER ?? "cli", source: "cli" });
          out.write(`Sent to the agent: ${r.answered}\n`);
        } catch (e) {
          if (!(e instanceof CliError)) throw e;
          out.write(`Not sent: ${e.message}\n`);
          asked.delete(q.id); // still open (a wrong answer): asked again on the next update
        } finally {
          paused = false;
        }
      }
    }
  } finally {
    if (timer) clearInterval(timer);
    if (tty) out.write("\r\x1b[2K");
  }
  const full = await api.call<RunView>("GET", `/api/runs/${id}`);
  return full;
}

function devNull(): NodeJS.WriteStream {
  return { isTTY: false, write: () => true } as unknown as NodeJS.WriteStream;
}

/** Best effort: the desktop's opener when there is one; the address is printed either way. */
function openInBrowser(url: string): void {
  const opener = process.platform === "darwin" ? "open" : process.platform === "win32" ? "explorer" : "xdg-open";
  try {
    spawn(opener, [url], { stdio: "ignore", detached: true }).on("error", () => {}).unref();
  } catch {
    /* no opener: the printed address will do */
  }
}

export async function main(argv: string[], out: NodeJS.WriteStream = process.stdout, err: NodeJS.WriteStream = process.stderr, input: NodeJS.ReadableStream & { isTTY?: boolean } = process.stdin): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    loadDotEnv();
  } catch (e) {
    err.write(`deckhand: cannot read .env: ${(e as Error).message}\n`);
    return 2;
  }
  try {
    if (cmd === "--version" || cmd === "-v" || cmd === "version") {
      out.write(`deckhand ${version()}\n`);
      return 0;
    }
    if (cmd && cmd !== "help" && (rest.includes("--help") || rest.includes("-h"))) {
      const h = commandHelp(cmd);
      if (!h) throw new CliError(`Unknown command "${cmd}".\n${usage()}`);
      out.write(`${h}\n`);
      return 0;
    }
    const json = { json: { type: "boolean" as const } };
    switch (cmd) {
      case "serve": {
        const { values } = parseArgs("serve", { args: rest, options: { role: { type: "string" } } });
        const role = values.role;
        if (role !== undefined && role !== "web" && role !== "worker" && role !== "all") throw new CliError(`--role must be web, worker or all (got "${role}")\n${commandHelp("serve")}`);
        const { serve } = await import("../server/serve.ts");
        await serve(config(), { role });
        return 0;
      }
      case "migrate": {
        parseArgs("migrate", { args: rest, options: {} });
        const c = config();
        const { openDatabase, migrate } = await import("../db/database.ts");
        const db = await openDatabase({ url: c.DATABASE_URL, dataDir: c.DATA_DIR });
        await migrate(db);
        await db.close();
        out.write(`Migrations applied (${db.kind}).\n`);
        return 0;
      }
      case "run": {
        const { values, positionals } = parseArgs("run", { args: rest, options: { repo: { type: "string" }, ref: { type: "string" }, model: { type: "string" }, detach: { type: "boolean" }, ...json }, allowPositionals: true });
        const prompt = positionals.join(" ").trim();
        if (!prompt) throw new CliError('A prompt is required: deckhand run --repo <name> "<prompt>"');
        const api = client(config());
        const created = await api.call<{ id: string; url: string; status: string }>("POST", "/api/runs", { repo: values.repo, ref: values.ref, model: values.model, prompt, source: "cli", createdBy: process.env.USER ?? "cli" });
        if (values.json && values.detach) return void out.write(`${JSON.stringify(created)}\n`), 0;
        if (!values.json) out.write(`Run ${created.id} started: ${created.url}\n`);
        if (values.detach) return 0;
        const release = noteOnInterrupt(created.id, err);
        try {
          const asker: Asker = !values.json && out.isTTY && input.isTTY ? (q) => askOnTty(q, input, out) : null;
          const v = await follow(api, created.id, values.json ? devNull() : out, asker);
          const { events: _e, diff: _d, ...view } = v as RunView & { events?: unknown; diff?: unknown };
          out.write(values.json ? `${JSON.stringify(view)}\n` : `${summary(v)}\n`);
          return exitCodeFor(v);
        } finally {
          release();
        }
      }
      case "runs": {
        const { values } = parseArgs("runs", { args: rest, options: { status: { type: "string" }, repo: { type: "string" }, source: { type: "string" }, limit: { type: "string" }, ...json } });
        const { json: asJson, ...filters } = values;
        const q = new URLSearchParams(Object.entries(filters).filter(([, v]) => v) as [string, string][]);
        const api = client(config());
        const r = await api.call<{ runs: { id: string; status: string; repo: string; title: string; durationMs: number; source: string }[] }>("GET", `/api/runs?${q}`);
        if (asJson) return void out.write(`${JSON.stringify(r.runs)}\n`), 0;
        if (!r.runs.length) out.write("No runs yet.\n");
        for (const x of r.runs) {
          out.write(`${x.id}  ${plainStatus(x.status).padEnd(16)} ${x.repo.padEnd(16)} ${x.source.padEnd(6)} ${fmtDuration(x.durationMs).padStart(7)}  ${x.title}\n`);
        }
        return 0;
      }
      case "status": {
        const { values, positionals } = parseArgs("status", { args: rest, options: json, allowPositionals: true });
        const [id] = positionals;
        if (!id) throw new CliError(commandHelp("status")!);
        const v = await client(config()).call<RunView & { events?: unknown; diff?: unknown; timeline?: unknown }>("GET", `/api/runs/${encodeURIComponent(id)}`);
        const { events: _e, diff: _d, timeline: _t, ...view } = v;
        if (values.json) return void out.write(`${JSON.stringify(view)}\n`), 0;
        out.write(isDone(v.status) ? `${summary(v)}\n` : `${v.id}: ${progressLine(v)}\nRun page: ${v.url}\n`);
        return 0;
      }
      case "logs": {
        const { values, positionals } = parseArgs("logs", { args: rest, options: { "no-follow": { type: "boolean" } }, allowPositionals: true });
        const [id] = positionals;
        if (!id) throw new CliError(commandHelp("logs")!);
        const api = client(config());
        const release = noteOnInterrupt(id, err);
        try {
          const v = await logs(api, id, out, !values["no-follow"]);
          out.write(`— ${plainStatus(v.status)}${v.reason ? `: ${v.reason}` : ""}\n`);
        } finally {
          release();
        }
        return 0;
      }
      case "open": {
        const { positionals } = parseArgs("open", { args: rest, options: {}, allowPositionals: true });
        const [id] = positionals;
        if (!id) throw new CliError(commandHelp("open")!);
        const v = await client(config()).call<RunView>("GET", `/api/runs/${encodeURIComponent(id)}`);
        out.write(`${v.url}\n`);
        if (out.isTTY) openInBrowser(v.url);
        return 0;
      }
      case "say": {
        const [id, ...text] = rest;
        if (!id || !text.length) throw new CliError(commandHelp("say")!);
        const r = await client(config()).call<{ status: string }>("POST", `/api/runs/${encodeURIComponent(id)}/inputs`, { text: text.join(" "), author: process.env.USER ?? "cli" });
        out.write(`Sent (the run is ${plainStatus(r.status)}).\n`);
        return 0;
      }
      case "answer": {
        const { values, positionals } = parseArgs("answer", { args: rest, options: { question: { type: "string" }, approve: { type: "boolean" }, reject: { type: "boolean" }, part: { type: "string", multiple: true }, ...json }, allowPositionals: true });
        const [id, ...words] = positionals;
        const text = words.join(" ").trim();
        const how = [values.approve || values.reject, !!values.part?.length, !!text].filter(Boolean).length;
        if (!id || how !== 1 || (values.approve && values.reject)) throw new CliError(commandHelp("answer")!);
        const answer = values.approve || values.reject ? { approve: !!values.approve } : values.part?.length ? { answers: values.part } : { answer: text };
        const r = await client(config()).call<{ questionId: string; answered: string }>("POST", `/api/runs/${encodeURIComponent(id)}/answers`, { questionId: values.question, ...answer, author: process.env.USER ?? "cli", source: "cli" });
        out.write(values.json ? `${JSON.stringify(r)}\n` : `Sent to the agent (${r.questionId}): ${r.answered}\n`);
        return 0;
      }
      case "stop": {
        const [id] = rest;
        if (!id) throw new CliError(commandHelp("stop")!);
        const r = await client(config()).call<{ status: string }>("POST", `/api/runs/${encodeURIComponent(id)}/stop`);
        out.write(`Run ${id} is ${plainStatus(r.status)}.\n`);
        return 0;
      }
      case "doctor": {
        const { values } = parseArgs("doctor", { args: rest, options: json });
        const { runDoctor, formatDoctor } = await import("../ops/doctor.ts");
        const results = await runDoctor(config());
        out.write(values.json ? `${JSON.stringify(results)}\n` : `${formatDoctor(results)}\n`);
        return results.some((r) => r.status === "fail") ? 1 : 0;
      }
      case "e2b": {
        const { e2bCommand, UsageError } = await import("../sandbox/e2b/template-cli.ts");
        return await e2bCommand(rest, process.env, out).catch((e) => {
          throw e instanceof UsageError ? new CliError(e.message) : e;
        });
      }
      case "help": {
        const h = rest[0] ? commandHelp(rest[0]) : usage();
        if (!h) throw new CliError(`Unknown command "${rest[0]}".\n${usage()}`);
        out.write(`${h}\n`);
        return 0;
      }
      case undefined:
      case "--help":
      case "-h":
        out.write(`${usage()}\n`);
        return cmd ? 0 : 2;
      default:
        throw new CliError(`Unknown command "${cmd}".\n${usage()}`);
    }
  } catch (e) {
    if (e instanceof CliError) {
      err.write(`deckhand: ${e.message}\n`);
      return 2;
    }
    err.write(`deckhand: ${(e as Error).stack ?? e}\n`);
    return 1;
  }
}
