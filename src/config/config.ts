/**
 * The one configuration module. Every variable is read here, validated with zod, and documented in
 * `.env.example`. A bad or missing variable is reported all at once, by name, with what is expected.
 */
import path from "node:path";
import { z } from "zod";

const bool = z
  .enum(["true", "false", "1", "0", "yes", "no"])
  .transform((v) => v === "true" || v === "1" || v === "yes");

const positiveInt = (def: number) => z.coerce.number().int().positive().default(def);

/** `name=value,name2=value2` */
export function parsePairs(raw: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!raw) return out;
  for (const part of raw.split(",").map((s) => s.trim()).filter(Boolean)) {
    const eq = part.indexOf("=");
    if (eq <= 0 || eq === part.length - 1) throw new Error(`"${part}" is not name=value`);
    out[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return out;
}

const pairs = (what: string) =>
  z
    .string()
    .optional()
    .transform((raw, ctx) => {
      try {
        return parsePairs(raw);
      } catch (e) {
        ctx.addIssue({ code: "custom", message: `expected ${what} as name=value pairs separated by commas: ${(e as Error).message}` });
        return z.NEVER;
      }
    });

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
    HOST: z.string().default("0.0.0.0"),
    PUBLIC_URL: z.string().url().optional(),
    DATA_DIR: z.string().default("./.deckhand"),
    DATABASE_URL: z
      .string()
      .regex(/^postgres(ql)?:\/\//, "must start with postgres:// or postgresql://")
      .optional(),
    API_TOKEN: z.string().min(16, "must be at least 16 characters").optional(),
    SANDBOX_PROVIDER: z.enum(["local", "e2b"]).default("local"),
    /** Require bubblewrap: refuse to run unisolated (production default is to warn). */
    LOCAL_SANDBOX_REQUIRE_ISOLATION: bool.default(false),
    REPOS: pairs("REPOS (name=cloneURL)"),
    DEFAULT_REPO: z.string().optional(),
    MODEL: z
      .string()
      .regex(/^[^/\s]+\/\S+$/, "must be an OpenCode provider/model id such as anthropic/claude-sonnet-4-5")
      .optional(),
    LLM_BASE_URL: z.string().url().optional(),
    LLM_API_KEY: z.string().optional(),
    LLM_MODEL: z.string().optional(),
    MAX_CONCURRENT_RUNS: positiveInt(4),
    /** Runs of one repo provisioning or running at once (default: only MAX_CONCURRENT_RUNS applies). */
    REPO_MAX_CONCURRENT_RUNS: z.coerce.number().int().positive().optional(),
    /** Consecutive sandbox-creation failures that open the provider circuit breaker (no new sandboxes). */
    PROVIDER_BREAKER_THRESHOLD: positiveInt(5),
    /** How long the open breaker waits before letting one trial sandbox through (seconds). */
    PROVIDER_BREAKER_COOLDOWN_SECONDS: positiveInt(60),
    /** How long an idle run keeps its sandbox for follow-ups. */
    RUN_KEEPALIVE_SECONDS: positiveInt(30 * 60),
    RUN_MAX_DURATION_SECONDS: positiveInt(4 * 60 * 60),
    PROVISION_TIMEOUT_SECONDS: positiveInt(10 * 60),
    PROVISION_MAX_ATTEMPTS: positiveInt(3),
    HEARTBEAT_INTERVAL_SECONDS: positiveInt(15),
    HEARTBEAT_TIMEOUT_SECONDS: positiveInt(90),
    WATCHDOG_INTERVAL_SECONDS: positiveInt(30),
    LEASE_SECONDS: positiveInt(60),
    MAX_BODY_BYTES: positiveInt(1024 * 1024),
    OPENCODE_BIN: z.string().optional(),

    // Slack
    SLACK_SIGNING_SECRET: z.string().optional(),
    SLACK_BOT_TOKEN: z.string().regex(/^xox[a-z]-/, "must be a bot token (xoxb-...)").optional(),
    SLACK_APP_TOKEN: z.string().regex(/^xapp-/, "must be an app-level token (xapp-...)").optional(),
    SLACK_API_URL: z.string().url().optional(),
    SLACK_BOT_USER_ID: z.string().optional(),
    SLACK_BOT_ID: z.string().optional(),
    SLACK_CHANNEL_REPOS: pairs("SLACK_CHANNEL_REPOS (channelId=repo)"),

    // Linear
    LINEAR_WEBHOOK_SECRET: z.string().optional(),
    LINEAR_ACCESS_TOKEN: z.string().optional(),
    LINEAR_API_KEY: z.string().optional(),
    LINEAR_API_URL: z.string().url().optional(),
    LINEAR_BOT_USER_ID: z.string().optional(),
    LINEAR_TEAM_REPOS: pairs("LINEAR_TEAM_REPOS (teamKey=repo)"),
    LINEAR_CLIENT_ID: z.string().optional(),
    LINEAR_CLIENT_SECRET: z.string().optional(),

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
  /** Environment variables the model's provider needs inside the sandbox (its key). */
  env: Record<string, string>;
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

/** Known provider → key variable, so MODEL=anthropic/... forwards only ANTHROPIC_API_KEY into the sandbox. */
const PROVIDER_KEYS: Record<string, string[]> = {
  anthropic: ["ANTHROPIC_API_KEY"],
  openai: ["OPENAI_API_KEY"],
  google: ["GOOGLE_GENERATIVE_AI_API_KEY", "GEMINI_API_KEY"],
  openrouter: ["OPENROUTER_API_KEY"],
  groq: ["GROQ_API_KEY"],
  mistral: ["MISTRAL_API_KEY"],
  deepseek: ["DEEPSEEK_API_KEY"],
  xai: ["XAI_API_KEY"],
};

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
    };
  } else if (c.MODEL) {
    const provider = c.MODEL.split("/")[0]!;
    const keys = PROVIDER_KEYS[provider] ?? [];
    const present = keys.filter((k) => cleaned[k]);
    if (keys.length && !present.length) problems.push(`MODEL: ${c.MODEL} needs ${keys.join(" or ")} to be set`);
    model = { id: c.MODEL, env: Object.fromEntries(present.map((k) => [k, cleaned[k]!])) };
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
  const repoNames = Object.keys(c.REPOS);
  summary.push(repoNames.length ? `repos: ${repoNames.join(", ")}${c.DEFAULT_REPO ? ` (default ${c.DEFAULT_REPO})` : ""}` : "repos: none — set REPOS=name=cloneURL to allow runs");
  summary.push(c.API_TOKEN ? "API: bearer API_TOKEN" : `API: bearer token generated in ${path.resolve(cwd, c.DATA_DIR, "api-token")} (set API_TOKEN to choose one)`);
  return { ...c, PUBLIC_URL: publicUrl, DATA_DIR: path.resolve(cwd, c.DATA_DIR), model, summary };
}
