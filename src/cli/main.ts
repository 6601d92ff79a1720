/**
 * `deckhand` command line: serve, migrate, run, runs, stop, say.
 * The client commands talk to a running server over its API (DECKHAND_URL, default http://127.0.0.1:$PORT).
 */
import { parseArgs } from "node:util";
import { ConfigError, loadConfig, type Config } from "../config/config.ts";
import { resolveApiToken } from "../server/auth.ts";
import type { RunView } from "../runs/run-view.ts";
import { exitCodeFor, fmtDuration, isDone, progressLine, summary } from "./progress.ts";

const USAGE = `Usage:
  deckhand serve                                   start the server (also: npm start)
  deckhand migrate                                 apply database migrations
  deckhand run --repo <name> [--ref <branch>] [--model <id>] "<prompt>"   start a run and follow it
  deckhand runs [--status s] [--repo r] [--limit n]        list runs
  deckhand say <run-id> "<text>"                   send a follow-up to a run
  deckhand stop <run-id>                           stop a run
  deckhand e2b template [--name n] [--dockerfile]   build the E2B sandbox template (docs/e2b.md)
Client commands use DECKHAND_URL (default http://127.0.0.1:$PORT) and API_TOKEN (or DATA_DIR/api-token).`;

class CliError extends Error {}

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

async function follow(api: Client, id: string, out: NodeJS.WriteStream): Promise<RunView> {
  const tty = out.isTTY;
  const spinner = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
  let after = 0;
  let lastLine = "";
  let view: RunView | null = null;
  let frame = 0;
  let timer: NodeJS.Timeout | null = null;
  const draw = () => {
    if (!view) return;
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
    }
  } finally {
    if (timer) clearInterval(timer);
    if (tty) out.write("\r\x1b[2K");
  }
  const full = await api.call<RunView>("GET", `/api/runs/${id}`);
  return full;
}

export async function main(argv: string[], out: NodeJS.WriteStream = process.stdout, err: NodeJS.WriteStream = process.stderr): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case "serve": {
        const { serve } = await import("../server/serve.ts");
        await serve(config());
        return 0;
      }
      case "migrate": {
        const c = config();
        const { openDatabase, migrate } = await import("../db/database.ts");
        const db = await openDatabase({ url: c.DATABASE_URL, dataDir: c.DATA_DIR });
        await migrate(db);
        await db.close();
        out.write(`Migrations applied (${db.kind}).\n`);
        return 0;
      }
      case "run": {
        const { values, positionals } = parseArgs({ args: rest, options: { repo: { type: "string" }, ref: { type: "string" }, model: { type: "string" }, detach: { type: "boolean" } }, allowPositionals: true });
        const prompt = positionals.join(" ").trim();
        if (!prompt) throw new CliError('A prompt is required: deckhand run --repo <name> "<prompt>"');
        const api = client(config());
        const created = await api.call<{ id: string; url: string }>("POST", "/api/runs", { repo: values.repo, ref: values.ref, model: values.model, prompt, createdBy: process.env.USER ?? "cli" });
        out.write(`Run ${created.id} started: ${created.url}\n`);
        if (values.detach) return 0;
        const v = await follow(api, created.id, out);
        out.write(`${summary(v)}\n`);
        return exitCodeFor(v);
      }
      case "runs": {
        const { values } = parseArgs({ args: rest, options: { status: { type: "string" }, repo: { type: "string" }, limit: { type: "string" } } });
        const q = new URLSearchParams(Object.entries(values).filter(([, v]) => v) as [string, string][]);
        const api = client(config());
        const r = await api.call<{ runs: { id: string; status: string; repo: string; title: string; createdAt: string; finishedAt: string | null; source: string }[] }>("GET", `/api/runs?${q}`);
        if (!r.runs.length) out.write("No runs yet.\n");
        for (const x of r.runs) {
          const dur = fmtDuration((x.finishedAt ? Date.parse(x.finishedAt) : Date.now()) - Date.parse(x.createdAt));
          out.write(`${x.id}  ${x.status.padEnd(12)} ${x.repo.padEnd(16)} ${x.source.padEnd(6)} ${dur.padStart(7)}  ${x.title}\n`);
        }
        return 0;
      }
      case "say": {
        const [id, ...text] = rest;
        if (!id || !text.length) throw new CliError('Usage: deckhand say <run-id> "<text>"');
        const r = await client(config()).call<{ status: string }>("POST", `/api/runs/${id}/inputs`, { text: text.join(" ") });
        out.write(`Sent (run is ${r.status}).\n`);
        return 0;
      }
      case "stop": {
        const [id] = rest;
        if (!id) throw new CliError("Usage: deckhand stop <run-id>");
        const r = await client(config()).call<{ status: string }>("POST", `/api/runs/${id}/stop`);
        out.write(`Run ${id} is ${r.status}.\n`);
        return 0;
      }
      case "e2b": {
        const { e2bCommand, UsageError } = await import("../sandbox/e2b/template-cli.ts");
        return await e2bCommand(rest, process.env, out).catch((e) => {
          throw e instanceof UsageError ? new CliError(e.message) : e;
        });
      }
      case undefined:
      case "help":
      case "--help":
      case "-h":
        out.write(`${USAGE}\n`);
        return cmd ? 0 : 2;
      default:
        throw new CliError(`Unknown command "${cmd}".\n${USAGE}`);
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
