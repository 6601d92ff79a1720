/**
 * The OpenCode configuration for a run, as a pure function. Headless rules: nothing may wait on a human, so every
 * permission is allowed except the `question` tool, which is denied (an unanswered question keeps a session busy
 * forever). Model list fetches, auto-update and sharing are off.
 */
import type { ModelConfig } from "../config/config.ts";

export const OPENCODE_PORT = 4096;



/** How OpenCode in the sandbox reaches the model: Deckhand's gateway, with the run's model token as its key. */
export interface GatewayAccess {
  /** `${sandboxBackendUrl}/gateway/v1` */
  baseURL: string;
  /** The per-run model token (not the provider's key). */
  token: string;
  /** The upstream model name this run uses. */
  model: string;
}

export function opencodeConfig(model: ModelConfig, gateway: GatewayAccess): Record<string, unknown> {
  // The last matching rule wins: allow everything, then deny `question` (it would wait on a human forever).
  const permission = { "*": "allow", question: "deny" };
  const name = gateway.model;
  const anthropic = model.upstream.kind === "anthropic";
  const providerId = anthropic ? "anthropic" : "deckhand";
  return {
    $schema: "https://opencode.ai/config.json",
    model: `${providerId}/${name}`,
    permission,
    autoupdate: false,
    share: "disabled",
    // Every provider but this one is disabled: no other key could be used, and none is present.
    enabled_providers: [providerId],
    provider: anthropic
      ? { anthropic: { options: { baseURL: gateway.baseURL, apiKey: gateway.token }, models: { [name]: { name, tool_call: true } } } }
      : {
          deckhand: {
            npm: "@ai-sdk/openai-compatible",
            name: "Deckhand gateway",
            options: { baseURL: gateway.baseURL, apiKey: gateway.token, includeUsage: true },
            models: { [name]: { name, tool_call: true } },
          },
        },
  };
}

/** Environment for `opencode serve` inside the sandbox. */
export function opencodeEnv(opts: { model: ModelConfig; gateway: GatewayAccess; home: string; password: string }): Record<string, string> {
  return {
    HOME: opts.home,
    XDG_CONFIG_HOME: `${opts.home}/.config`,
    XDG_DATA_HOME: `${opts.home}/.local/share`,
    XDG_STATE_HOME: `${opts.home}/.local/state`,
    XDG_CACHE_HOME: `${opts.home}/.cache`,
    OPENCODE_CONFIG_CONTENT: JSON.stringify(opencodeConfig(opts.model, opts.gateway)),
    OPENCODE_SERVER_PASSWORD: opts.password,
    OPENCODE_DISABLE_MODELS_FETCH: "1",
    OPENCODE_DISABLE_AUTOUPDATE: "1",
    OPENCODE_DISABLE_LSP_DOWNLOAD: "1",
    OPENCODE_DISABLE_SHARE: "1",
    OPENCODE_DISABLE_DEFAULT_PLUGINS: "1",
  };
}
