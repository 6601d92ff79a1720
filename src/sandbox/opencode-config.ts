/**
 * The OpenCode configuration for a run, as a pure function. Headless rules: nothing may wait on a human, so every
 * permission is allowed except the `question` tool, which is denied (an unanswered question keeps a session busy
 * forever). Model list fetches, auto-update and sharing are off.
 */
import type { ModelConfig } from "../config/config.ts";

export const OPENCODE_PORT = 4096;



export function opencodeConfig(model: ModelConfig): Record<string, unknown> {
  // The last matching rule wins: allow everything, then deny `question` (it would wait on a human forever).
  const permission = { "*": "allow", question: "deny" };
  const cfg: Record<string, unknown> = {
    $schema: "https://opencode.ai/config.json",
    model: model.id,
    permission,
    autoupdate: false,
    share: "disabled",
  };
  if (model.openaiCompatible) {
    const { baseURL, apiKey, model: name } = model.openaiCompatible;
    cfg.provider = {
      "deckhand-llm": {
        npm: "@ai-sdk/openai-compatible",
        name: "Deckhand LLM",
        options: { baseURL, apiKey },
        models: { [name]: { name, tool_call: true } },
      },
    };
  }
  return cfg;
}

/** Environment for `opencode serve` inside the sandbox. */
export function opencodeEnv(opts: { model: ModelConfig; home: string; password: string }): Record<string, string> {
  return {
    ...opts.model.env,
    HOME: opts.home,
    XDG_CONFIG_HOME: `${opts.home}/.config`,
    XDG_DATA_HOME: `${opts.home}/.local/share`,
    XDG_STATE_HOME: `${opts.home}/.local/state`,
    XDG_CACHE_HOME: `${opts.home}/.cache`,
    OPENCODE_CONFIG_CONTENT: JSON.stringify(opencodeConfig(opts.model)),
    OPENCODE_SERVER_PASSWORD: opts.password,
    OPENCODE_DISABLE_MODELS_FETCH: "1",
    OPENCODE_DISABLE_AUTOUPDATE: "1",
    OPENCODE_DISABLE_LSP_DOWNLOAD: "1",
    OPENCODE_DISABLE_SHARE: "1",
    OPENCODE_DISABLE_DEFAULT_PLUGINS: "1",
  };
}
