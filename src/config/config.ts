/**
 * The one configuration module. Every variable is read here, validated with zod, and documented in
 * `.env.example`. A bad or missing variable is reported all at once, by name, with what is expected.
 */
import path from "node:path";
import { z } from "zod";
import { parsePrice } from "../gateway/prices.ts";

import { bool, list, pairs, parsed, parsePermissions, positiveInt, urlHasCredentials } from "./fields.ts";

export { parsePairs, parsePermissions, type PermissionRule, urlHasCredentials } from "./fields.ts";

const schema = z
  .object({
    NODE_ENV: z.string().default("development"),
    LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),

    // ── Operations (roles, health, metrics, traces, logs) ──
    /** pretty: readable lines; json: one JSON object per line. Unset: pretty on a terminal, JSON otherwise. */
    LOG_FORMAT: z.enum(["pretty", "json"]).optional(),
    /** Which loops this process runs: web (HTTP only), worker (reconciler, outbox, reaper), all (both). */
    DECKHAND_ROLE: z.enum(["web", "worker", "all"]).default("all"),
    /** Longest graceful shutdown (seconds): readiness flips first, then loops and connections close. */
    SHUTDOWN_TIMEOUT: z.coerce.number().positive().default(25),
    /** Serve /metrics on this port (no token) instead of on the main port behind the API token. */
    METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
    /** OTLP/HTTP endpoint for traces (e.g. http://otel-collector:4318). Unset: no tracing. */
    OTEL_EXPORTER_OTLP_ENDPOINT: z.string().url().optional(),
    OTEL_SERVICE_NAME: z.string().default("deckhand"),
    // ── end Operations ──
    PORT: z.coerce.number().int().min(0).max(65535).default(3000),
    HOST: z.string().default("127.0.0.1"),
    PUBLIC_URL: z.string().url().optional(),
    DATA_DIR: z.string().default("./.deckhand"),
    DATABASE_URL: z
      .string()
      .regex(/^postgres(ql)?:\/\//, "must start with postgres:// or postgresql://")
      .optional(),
    // ── Database and inbound load (docs/database.md) ──
    /** Slack events / Linear webhooks handled at once after their ack; more wait in a queue. */
    INBOUND_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(8),
    /** Deliveries allowed to wait; beyond that Slack and Linear get 503 (they retry later) and nothing is stored. */
    INBOUND_MAX_QUEUED: z.coerce.number().int().min(1).max(100_000).default(2000),
    API_TOKEN: z.string().min(16, "must be at least 16 characters").optional(),
    // Front door (issue #12): failed bearer tokens and sign-ins per client address before 429.
    AUTH_FAILURES_PER_WINDOW: positiveInt(10),
    AUTH_FAILURE_WINDOW_SECONDS: positiveInt(60),
    SANDBOX_PROVIDER: z.enum(["local", "e2b"]).default("local"),
    /** Require bubblewrap: refuse to run unisolated (production default is to warn). */
    LOCAL_SANDBOX_REQUIRE_ISOLATION: bool.default(false),
    // --- Local sandbox hardening (issue #13): network, limits, who the sandbox runs as ---
    /** isolated: own network namespace, outbound through pasta, host loopback unreachable; none: no network; host: shares the host's (unsafe). */
    LOCAL_SANDBOX_NETWORK: z.enum(["isolated", "none", "host"]).default("isolated"),
    /** Explicit opt-out for development: start runs even when the isolation probe fails. */
    LOCAL_SANDBOX_ALLOW_UNISOLATED: bool.default(false),
    /** Host uid (and gid) the sandboxes run as when the server runs as root (unused otherwise: the server's own uid). */
    LOCAL_SANDBOX_HOST_UID: z.coerce.number().int().min(1).max(4_294_967_294).default(61000),
    /** Processes (and threads) one sandbox may hold at once. */
    LOCAL_SANDBOX_MAX_PROCESSES: positiveInt(512),
    /** Memory of one sandbox in MiB (cgroup; not limited where no cgroup is writable). */
    LOCAL_SANDBOX_MEMORY_MB: positiveInt(4096),
    /** CPU share of one sandbox, in cores (cgroup cpu quota; else processes run at nice 10). */
    LOCAL_SANDBOX_CPUS: z.coerce.number().positive().max(1024).default(2),
    /** Largest file the agent may write, and the workspace size checked while the run lives, in MiB. */
    LOCAL_SANDBOX_DISK_MB: positiveInt(4096),
    /** Where local sandboxes' folders live (default: DATA_DIR/sandboxes, or DATA_DIR-sandboxes for a root server). */
    LOCAL_SANDBOX_DIR: z.string().optional(),
    /**
     * Stop an idle run's OpenCode, relay and sandbox processes during the keep-alive (files and OpenCode's session
     * stay on disk); a follow-up starts them again in the same session.
     */
    LOCAL_SUSPEND_WHEN_IDLE: bool.default(true),
    /** Largest git bundle of a local-folder repository shipped into a sandbox, in MiB. */
    LOCAL_REPO_BUNDLE_MAX_MB: positiveInt(1024),
    REPOS: pairs("REPOS (name=cloneURL)"),
    DEFAULT_REPO: z.string().optional(),
    MODEL: z
      .string()
      .regex(/^[^/\s]+\/\S+$/, "must be an OpenCode provider/model id such as anthropic/claude-sonnet-4-5")
      .optional(),
    LLM_BASE_URL: z.string().url().optional(),
    LLM_API_KEY: z.string().optional(),
    LLM_MODEL: z.string().optional(),

    // Model gateway (src/gateway): the sandbox reaches the provider only through the backend, with a per-run token.
    /** Models a run may choose (`model=<id>`, `--model`, API `model`), comma-separated; default: the configured one. */
    MODELS: z.string().optional(),
    /** Price overrides in USD per million tokens: `model=input/output[/cacheRead/cacheWrite]`, comma-separated. */
    MODEL_PRICES: pairs("MODEL_PRICES (model=input/output[/cacheRead/cacheWrite])"),
    /** Per-run limits: the gateway refuses further model calls once a run has spent this much. */
    RUN_BUDGET_USD: z.coerce.number().positive().optional(),
    RUN_BUDGET_TOKENS: z.coerce.number().int().positive().optional(),
    /** Per UTC day, for each person and for everyone together. */
    DAILY_BUDGET_USD: z.coerce.number().positive().optional(),
    /** Retries of a provider 429/5xx (before any byte reached the agent), and the longest Retry-After honoured. */
    GATEWAY_MAX_RETRIES: z.coerce.number().int().min(0).max(10).default(3),
    GATEWAY_MAX_RETRY_WAIT_SECONDS: z.coerce.number().min(0).max(600).default(30),
    /** Largest model request body the gateway accepts (conversations with tool output get big). */
    GATEWAY_MAX_BODY_BYTES: positiveInt(16 * 1024 * 1024),
    MAX_CONCURRENT_RUNS: positiveInt(4),
    /** Runs of one repo provisioning or running at once (default: only MAX_CONCURRENT_RUNS applies). */
    REPO_MAX_CONCURRENT_RUNS: z.coerce.number().int().positive().optional(),
    /** Consecutive sandbox-creation failures that open the provider circuit breaker (no new sandboxes). */
    PROVIDER_BREAKER_THRESHOLD: positiveInt(5),
    /** How long the open breaker waits before letting one trial sandbox through (seconds). */
    PROVIDER_BREAKER_COOLDOWN_SECONDS: positiveInt(60),
    /** How long an idle run keeps its sandbox for follow-ups. */
    RUN_KEEPALIVE_SECONDS: positiveInt(30 * 60),
    /** The agent may ask people questions (OpenCode's `question` tool), answered on the run's surface. */
    AGENT_QUESTIONS: bool.default(true),
    /** An unanswered question or approval is given up after this long: the agent is told to use its judgement. */
    QUESTION_TIMEOUT_SECONDS: positiveInt(30 * 60),
    /** Tool calls that need a person's approval, e.g. `bash:git push*,webfetch` (default: none, everything allowed). */
    PERMISSIONS: parsed(parsePermissions, (m) => `PERMISSIONS: ${m}`),
    RUN_MAX_DURATION_SECONDS: positiveInt(4 * 60 * 60),
    PROVISION_TIMEOUT_SECONDS: positiveInt(10 * 60),
    PROVISION_MAX_ATTEMPTS: positiveInt(3),
    HEARTBEAT_INTERVAL_SECONDS: positiveInt(15),
    HEARTBEAT_TIMEOUT_SECONDS: positiveInt(90),
    WATCHDOG_INTERVAL_SECONDS: positiveInt(30),
    LEASE_SECONDS: positiveInt(60),
    // Run core: retries, outages and several hosts (docs/reliability.md)
    /** Tries of a failing delivery (collect + push the result) before the run fails with the last error. */
    DELIVERY_MAX_ATTEMPTS: positiveInt(5),
    /** First pause after a failed reconciler action (delivery, provisioning); doubles per try. */
    RETRY_BASE_SECONDS: positiveInt(2),
    /** Longest pause between two tries of a reconciler action. */
    RETRY_MAX_SECONDS: positiveInt(300),
    /** Longest pause between two tries of a message to Slack/Linear (a recovered surface is retried at once anyway). */
    NOTIFY_MAX_BACKOFF_SECONDS: positiveInt(30),
    /** This machine's id among several hosts (default: generated once and kept in DATA_DIR/host-id). */
    HOST_ID: z.string().regex(/^[\w.-]{1,64}$/, "letters, digits, . _ - (at most 64)").optional(),
    /** How often a server process records that it is alive in the database. */
    HOST_HEARTBEAT_SECONDS: positiveInt(10),
    /** A host whose processes have not heartbeated for this long is gone: its local sandboxes' runs are failed. */
    HOST_DEAD_AFTER_SECONDS: positiveInt(45),
    MAX_BODY_BYTES: positiveInt(1024 * 1024),
    // Run events and live views (docs/limits.md)
    MAX_EVENT_BYTES: positiveInt(128 * 1024),
    MAX_RUN_EVENTS: positiveInt(50_000),
    MAX_RUN_EVENT_BYTES: positiveInt(100 * 1024 * 1024),
    MAX_LIVE_PER_RUN: positiveInt(50),
    MAX_LIVE_TOTAL: positiveInt(500),
    OPENCODE_BIN: z.string().optional(),

    // Slack
    SLACK_SIGNING_SECRET: z.string().optional(),
    SLACK_BOT_TOKEN: z.string().regex(/^xox[a-z]-/, "must be a bot token (xoxb-...)").optional(),
    SLACK_APP_TOKEN: z.string().regex(/^xapp-/, "must be an app-level token (xapp-...)").optional(),
    SLACK_API_URL: z.string().url().optional(),
    SLACK_BOT_USER_ID: z.string().optional(),
    SLACK_BOT_ID: z.string().optional(),
    SLACK_CHANNEL_REPOS: pairs("SLACK_CHANNEL_REPOS (channelId=repo)"),
    // Front door: who may drive runs from Slack (empty = everyone in the workspace).
    SLACK_ALLOWED_USERS: list,
    SLACK_ALLOWED_CHANNELS: list,
    SLACK_ALLOW_EXTERNAL: bool.default(false),

    // Linear
    LINEAR_WEBHOOK_SECRET: z.string().optional(),
    LINEAR_ACCESS_TOKEN: z.string().optional(),
    LINEAR_API_KEY: z.string().optional(),
    LINEAR_API_URL: z.string().url().optional(),
    LINEAR_BOT_USER_ID: z.string().optional(),
    LINEAR_TEAM_REPOS: pairs("LINEAR_TEAM_REPOS (teamKey=repo)"),
    LINEAR_CLIENT_ID: z.string().optional(),
    LINEAR_CLIENT_SECRET: z.string().optional(),
    // Front door: Linear workspaces (organization ids or url keys) that may drive runs (empty = any).
    LINEAR_ALLOWED_ORGANIZATIONS: list,
    // How much an agent session shows: quiet (start, questions, the result), normal, verbose (+ the agent's reasoning).
    LINEAR_VERBOSITY: z.enum(["quiet", "normal", "verbose"]).default("normal"),

    // E2B
    E2B_API_KEY: z.string().optional(),
    E2B_TEMPLATE: z.string().default("deckhand"),
    E2B_API_URL: z.string().url().optional(),
    E2B_SANDBOX_URL: z.string().url().optional(),
    E2B_DOMAIN: z.string().optional(),
    /** Pause (instead of keep running) an idle run's sandbox during the keep-alive. */
    E2B_PAUSE_WHEN_IDLE: bool.default(true),
    /** Lifetime of an E2B sandbox (the backstop against leaks); the backend extends it while the run is alive. */
    E2B_SANDBOX_TIMEOUT_SECONDS: z.coerce.number().int().min(60).max(86_400).default(30 * 60),
    /** How often the sandbox reaper looks for sandboxes whose run is finished or unknown (and extends live ones). */
    SANDBOX_REAPER_INTERVAL_SECONDS: positiveInt(5 * 60),

    // GitHub
    GITHUB_APP_ID: z.coerce.number().int().positive().optional(),
    GITHUB_APP_PRIVATE_KEY: z.string().optional(),
    GITHUB_TOKEN: z.string().optional(),
    GITHUB_API_URL: z.string().url().optional(),
    GITHUB_PR_DRAFT: bool.default(true),
  })
  .superRefine((c, ctx) => {
    for (const [name, url] of Object.entries(c.REPOS)) {
      if (!urlHasCredentials(url)) continue;
      ctx.addIssue({
        code: "custom",
        path: ["REPOS", name],
        message: "the clone URL carries credentials; remove them and use the GitHub App (GITHUB_APP_ID + GITHUB_APP_PRIVATE_KEY) or GITHUB_TOKEN instead",
      });
    }
    if (c.DEFAULT_REPO && !(c.DEFAULT_REPO in c.REPOS)) {
      ctx.addIssue({
        code: "custom",
        path: ["DEFAULT_REPO"],
        message: `"${c.DEFAULT_REPO}" is not one of REPOS (${Object.keys(c.REPOS).join(", ") || "none configured"})`,
      });
    }
    const llm = [c.LLM_BASE_URL, c.LLM_MODEL].filter(Boolean).length;
    if (llm === 1) {
      ctx.addIssue({
        code: "custom",
        path: [c.LLM_BASE_URL ? "LLM_MODEL" : "LLM_BASE_URL"],
        message: "LLM_BASE_URL and LLM_MODEL go together (an OpenAI-compatible endpoint and its model name)",
      });
    }
    if (c.SANDBOX_PROVIDER === "e2b" && !c.E2B_API_KEY) {
      ctx.addIssue({ code: "custom", path: ["E2B_API_KEY"], message: "is required when SANDBOX_PROVIDER=e2b" });
    }
    if (!!c.SLACK_BOT_TOKEN !== !!c.SLACK_SIGNING_SECRET && !c.SLACK_APP_TOKEN) {
      ctx.addIssue({ code: "custom", path: [c.SLACK_BOT_TOKEN ? "SLACK_SIGNING_SECRET" : "SLACK_BOT_TOKEN"], message: "Slack needs both SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (or SLACK_APP_TOKEN for socket mode)" });
    }
    if (!!c.GITHUB_APP_ID !== !!c.GITHUB_APP_PRIVATE_KEY) {
      ctx.addIssue({ code: "custom", path: [c.GITHUB_APP_ID ? "GITHUB_APP_PRIVATE_KEY" : "GITHUB_APP_ID"], message: "a GitHub App needs both GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY" });
    }
    if (llm === 2 && c.MODEL) {
      ctx.addIssue({ code: "custom", path: ["MODEL"], message: "set either MODEL or LLM_BASE_URL + LLM_MODEL, not both" });
    }
  });

export type RawConfig = z.infer<typeof schema>;

export interface ModelConfig {
  /** OpenCode model id, e.g. "anthropic/claude-sonnet-4-5" or "deckhand-llm/<LLM_MODEL>" */
  id: string;
  /** Provider block for OpenCode's config, when the model is an OpenAI-compatible endpoint. */
  openaiCompatible?: { baseURL: string; apiKey: string; model: string };
  /** Environment variables for the sandbox: always empty since the gateway (no key ever enters a sandbox). */
  env: Record<string, string>;
  /** The model name the provider knows (e.g. "claude-sonnet-4-5", "qwen2.5-coder:32b"). */
  name: string;
  /** Where the gateway forwards, with the real key (never sent to a sandbox). */
  upstream: { kind: "openai" | "anthropic"; baseURL: string; apiKey: string; keyName: string };
  /** Models a run may choose (upstream names); the first is the default. */
  allowed: string[];
}

export interface Config extends RawConfig {
  PUBLIC_URL: string;
  DATA_DIR: string;
  model: ModelConfig | null;
  /** What is set up and what is missing, in plain words, for the start-up log. */
  summary: string[];
}

export class ConfigError extends Error {
  constructor(public readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

/** Known provider → key variable and the API the gateway forwards to (the key stays on the backend). */
const PROVIDER_KEYS: Record<string, string[]> = {
  anthropic: ["ANTHROPIC_API_KEY"],
  openai: ["OPENAI_API_KEY"],
  openrouter: ["OPENROUTER_API_KEY"],
  groq: ["GROQ_API_KEY"],
  mistral: ["MISTRAL_API_KEY"],
  deepseek: ["DEEPSEEK_API_KEY"],
  xai: ["XAI_API_KEY"],
};
const PROVIDER_URLS: Record<string, string> = {
  anthropic: "https://api.anthropic.com/v1",
  openai: "https://api.openai.com/v1",
  openrouter: "https://openrouter.ai/api/v1",
  groq: "https://api.groq.com/openai/v1",
  mistral: "https://api.mistral.ai/v1",
  deepseek: "https://api.deepseek.com/v1",
  xai: "https://api.x.ai/v1",
};
/** Override of a provider's API address (tests, proxies): `ANTHROPIC_BASE_URL`, `OPENAI_BASE_URL`, ... */
const baseUrlVar = (provider: string) => `${provider.toUpperCase()}_BASE_URL`;

const modelList = (raw: string | undefined, first: string) => [first, ...(raw ?? "").split(",").map((s) => s.trim()).filter((s) => s && s !== first)];

export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Config {
  const cleaned: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== "") cleaned[k] = v;
  const parsed = schema.safeParse(cleaned);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((i) => `${i.path.join(".") || "config"}: ${i.message}${"received" in i && i.received ? "" : ""}`),
    );
  }
  const c = parsed.data;
  const problems: string[] = [];
  let model: ModelConfig | null = null;
  if (c.LLM_BASE_URL && c.LLM_MODEL) {
    model = {
      id: `deckhand-llm/${c.LLM_MODEL}`,
      openaiCompatible: { baseURL: c.LLM_BASE_URL, apiKey: c.LLM_API_KEY ?? "none", model: c.LLM_MODEL },
      env: {},
      name: c.LLM_MODEL,
      upstream: { kind: "openai", baseURL: c.LLM_BASE_URL.replace(/\/+$/, ""), apiKey: c.LLM_API_KEY ?? "none", keyName: "LLM_API_KEY" },
      allowed: modelList(c.MODELS, c.LLM_MODEL),
    };
  } else if (c.MODEL) {
    const provider = c.MODEL.split("/")[0]!;
    const name = c.MODEL.slice(provider.length + 1);
    const keys = PROVIDER_KEYS[provider];
    const present = (keys ?? []).filter((k) => cleaned[k]);
    if (!keys) problems.push(`MODEL: provider "${provider}" is not supported by the model gateway (supported: ${Object.keys(PROVIDER_KEYS).join(", ")}; or use LLM_BASE_URL + LLM_MODEL)`);
    else if (!present.length) problems.push(`MODEL: ${c.MODEL} needs ${keys.join(" or ")} to be set`);
    else {
      model = {
        id: c.MODEL,
        env: {},
        name,
        upstream: {
          kind: provider === "anthropic" ? "anthropic" : "openai",
          baseURL: (cleaned[baseUrlVar(provider)] ?? PROVIDER_URLS[provider]!).replace(/\/+$/, ""),
          apiKey: cleaned[present[0]!]!,
          keyName: present[0]!,
        },
        allowed: modelList(c.MODELS, name),
      };
    }
  }
  for (const [m, spec] of Object.entries(c.MODEL_PRICES)) {
    try {
      parsePrice(spec);
    } catch (e) {
      problems.push(`MODEL_PRICES: ${m}: ${(e as Error).message}`);
    }
  }
  if (problems.length) throw new ConfigError(problems);

  const publicUrl = (c.PUBLIC_URL ?? `http://127.0.0.1:${c.PORT}`).replace(/\/+$/, "");
  const summary: string[] = [];
  summary.push(c.DATABASE_URL ? "database: Postgres (DATABASE_URL)" : `database: embedded PGlite in ${path.resolve(cwd, c.DATA_DIR, "pglite")}`);
  summary.push(`sandboxes: ${c.SANDBOX_PROVIDER}`);
  summary.push(
    model
      ? `model: ${model.openaiCompatible ? `${model.openaiCompatible.model} at ${model.openaiCompatible.baseURL}` : model.id}`
      : "model: none configured — runs will fail until MODEL (with its API key) or LLM_BASE_URL + LLM_MODEL is set",
  );
  if (model) {
    const limits = [
      c.RUN_BUDGET_USD !== undefined && `$${c.RUN_BUDGET_USD} per run`,
      c.RUN_BUDGET_TOKENS !== undefined && `${c.RUN_BUDGET_TOKENS} tokens per run`,
      c.DAILY_BUDGET_USD !== undefined && `$${c.DAILY_BUDGET_USD} per person and in total per day`,
    ].filter(Boolean);
    summary.push(`model gateway: models ${model.allowed.join(", ")}; budgets: ${limits.length ? limits.join(", ") : "none"}`);
  }
  const repoNames = Object.keys(c.REPOS);
  summary.push(repoNames.length ? `repos: ${repoNames.join(", ")}${c.DEFAULT_REPO ? ` (default ${c.DEFAULT_REPO})` : ""}` : "repos: none — set REPOS=name=cloneURL to allow runs");
  summary.push(c.API_TOKEN ? "API: bearer API_TOKEN" : `API: bearer token generated in ${path.resolve(cwd, c.DATA_DIR, "api-token")} (set API_TOKEN to choose one)`);
  return { ...c, PUBLIC_URL: publicUrl, DATA_DIR: path.resolve(cwd, c.DATA_DIR), model, summary };
}
