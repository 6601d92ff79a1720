/** Help text for every `deckhand` command: `deckhand help <cmd>`, `deckhand <cmd> --help`. */
export const COMMANDS: Record<string, { usage: string; about: string; details?: string }> = {
  serve: { usage: "deckhand serve [--role web|worker|all]", about: "start the server (also: npm start)", details: "--role web: HTTP only (API, webhooks, pages, relay); worker: the reconciler, outbox and reaper (plus /livez, /readyz, /metrics); all (default, or DECKHAND_ROLE): both.\nSeveral processes share one Postgres (DATABASE_URL)." },
  migrate: { usage: "deckhand migrate", about: "apply database migrations" },
  run: { usage: 'deckhand run --repo <name> [--ref <branch>] [--model <id>] [--detach] [--json] "<prompt>"', about: "start a run and follow it", details: "Exit codes: 0 done, 1 failed, 130 stopped. Ctrl-C stops following; the run goes on (deckhand stop <id>).\nWhen the agent asks something, a terminal prompts for the answer; otherwise the question is printed with the deckhand answer command to use.\n--model: one of MODELS (default: the configured model). --detach: print the run id and return. --json: no progress, the final run as JSON." },
  runs: { usage: "deckhand runs [--status s] [--repo r] [--source s] [--limit n] [--json]", about: "list runs" },
  status: { usage: "deckhand status <run-id> [--json]", about: "show one run" },
  logs: { usage: "deckhand logs <run-id> [--no-follow]", about: "print a run's timeline, following it until it finishes" },
  open: { usage: "deckhand open <run-id>", about: "open the run page in a browser (prints its address)" },
  say: { usage: 'deckhand say <run-id> "<text>"', about: "send a follow-up to a run" },
  answer: {
    usage: 'deckhand answer <run-id> [--question <id>] ("<answer>" | --approve | --reject | --part <a> --part <b>) [--json]',
    about: "answer the agent's question or approval ask",
    details: "Without --question: the oldest open question. The answer is an option's label or your own words; --part gives one answer per part of a question in several parts.\ndeckhand run on a terminal asks you directly (type an option's number or your own answer).",
  },
  stop: { usage: "deckhand stop <run-id>", about: "stop a run" },
  doctor: { usage: "deckhand doctor [--json]", about: "check the set-up: sandboxes, database, model, Slack, Linear, GitHub, E2B, PUBLIC_URL" },
  e2b: { usage: "deckhand e2b template [--name n] [--dockerfile]", about: "build the E2B sandbox template (docs/e2b.md)" },
};

export function usage(): string {
  const w = Math.max(...Object.values(COMMANDS).map((c) => c.usage.length));
  return [
    "Usage:",
    ...Object.values(COMMANDS).map((c) => `  ${c.usage.padEnd(w)}  ${c.about}`),
    "  deckhand help <command> | deckhand <command> --help | deckhand --version",
    "Client commands use DECKHAND_URL (default http://127.0.0.1:$PORT) and API_TOKEN (or DATA_DIR/api-token).",
    "A .env file in the working directory is read first; variables already set in the environment win.",
  ].join("\n");
}

export function commandHelp(cmd: string): string | null {
  if (!Object.hasOwn(COMMANDS, cmd)) return null;
  const c = COMMANDS[cmd]!;
  return `Usage: ${c.usage}\n  ${c.about}${c.details ? `\n\n${c.details}` : ""}`;
}
