import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config/config.ts";

describe("config", () => {
  it("starts with no variables at all on the embedded defaults, and says what is missing", () => {
    const c = loadConfig({}, "/srv/app");
    expect(c.PORT).toBe(3000);
    expect(c.PUBLIC_URL).toBe("http://127.0.0.1:3000");
    expect(c.DATA_DIR).toBe("/srv/app/.deckhand");
    expect(c.DATABASE_URL).toBeUndefined();
    expect(c.SANDBOX_PROVIDER).toBe("local");
    expect(c.model).toBeNull();
    expect(c.summary.join("\n")).toMatch(/model: none configured/);
    expect(c.summary.join("\n")).toMatch(/repos: none/);
  });
  it("reports every bad variable at once, by name, with what is expected", () => {
    let err: ConfigError | null = null;
    try {
      loadConfig({ PORT: "seventy", DATABASE_URL: "mysql://x", MODEL: "claude", REPOS: "broken", MAX_CONCURRENT_RUNS: "0", SANDBOX_PROVIDER: "docker" });
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const text = err!.message;
    for (const name of ["PORT", "DATABASE_URL", "MODEL", "REPOS", "MAX_CONCURRENT_RUNS", "SANDBOX_PROVIDER"]) expect(text).toContain(name);
    expect(err!.problems.length).toBeGreaterThanOrEqual(6);
  });
  it("builds the model from an OpenAI-compatible endpoint, or from MODEL with its provider's key kept for the gateway", () => {
    const a = loadConfig({ LLM_BASE_URL: "http://127.0.0.1:11434/v1", LLM_MODEL: "qwen" });
    expect(a.model).toMatchObject({ id: "deckhand-llm/qwen", openaiCompatible: { baseURL: "http://127.0.0.1:11434/v1", model: "qwen" } });
    const b = loadConfig({ MODEL: "anthropic/claude-sonnet-4-5", ANTHROPIC_API_KEY: "k", OPENAI_API_KEY: "other", SLACK_BOT_TOKEN: undefined });
    // No key goes into the sandbox environment: the gateway forwards with it.
    expect(b.model).toEqual({
      id: "anthropic/claude-sonnet-4-5",
      env: {},
      name: "claude-sonnet-4-5",
      upstream: { kind: "anthropic", baseURL: "https://api.anthropic.com/v1", apiKey: "k", keyName: "ANTHROPIC_API_KEY" },
      allowed: ["claude-sonnet-4-5"],
    });
    expect(loadConfig({ LLM_BASE_URL: "http://x/v1", LLM_MODEL: "m", MODELS: "m2, m ,m3" }).model?.allowed).toEqual(["m", "m2", "m3"]);
    expect(() => loadConfig({ MODEL: "google/gemini-2.5-pro", GEMINI_API_KEY: "k" })).toThrow(/not supported by the model gateway/);
    expect(() => loadConfig({ LLM_BASE_URL: "http://x/v1", LLM_MODEL: "m", MODEL_PRICES: "m=3" })).toThrow(/MODEL_PRICES: m/);
    expect(() => loadConfig({ MODEL: "anthropic/claude-sonnet-4-5" })).toThrow(/ANTHROPIC_API_KEY/);
    expect(() => loadConfig({ LLM_BASE_URL: "http://x/v1" })).toThrow(/LLM_MODEL/);
  });
  it("checks DEFAULT_REPO against the allowlist", () => {
    expect(() => loadConfig({ REPOS: "api=/srv/api.git", DEFAULT_REPO: "web" })).toThrow(/DEFAULT_REPO.*not one of REPOS \(api\)/);
    expect(loadConfig({ REPOS: "api=/srv/api.git, web=acme/web", DEFAULT_REPO: "web" }).REPOS).toEqual({ api: "/srv/api.git", web: "acme/web" });
  });
  it("front door: listens on loopback by default; allowlists parse as lists; REPOS with credentials are refused", () => {
    const c = loadConfig({ SLACK_ALLOWED_USERS: "U1, U2", LINEAR_ALLOWED_ORGANIZATIONS: "acme" });
    expect(c.HOST).toBe("127.0.0.1");
    expect(c.SLACK_ALLOWED_USERS).toEqual(["U1", "U2"]);
    expect(c.SLACK_ALLOWED_CHANNELS).toEqual([]);
    expect(c.SLACK_ALLOW_EXTERNAL).toBe(false);
    expect(c.LINEAR_ALLOWED_ORGANIZATIONS).toEqual(["acme"]);
    let err: unknown;
    try {
      loadConfig({ REPOS: "api=https://x-access-token:ghp_SECRET123@github.com/acme/api.git,web=acme/web" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(String(err)).toMatch(/REPOS\.api: the clone URL carries credentials.*GitHub App.*GITHUB_TOKEN/);
    // The secret itself is never repeated in the message.
    expect(String(err)).not.toContain("ghp_SECRET123");
    expect(() => loadConfig({ REPOS: "u=https://user@example.com/r.git" })).toThrow(/credentials/);
    expect(loadConfig({ REPOS: "ok=https://github.com/acme/api.git,ssh=git@github.com:acme/api.git" }).REPOS.ok).toBe("https://github.com/acme/api.git");
  });
});
