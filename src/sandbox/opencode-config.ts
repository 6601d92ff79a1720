/**
 * The OpenCode configuration for a run, as a pure function. Every permission is allowed except what people chose to
 * answer themselves: the `question` tool (AGENT_QUESTIONS, else denied) and the tool calls listed in PERMISSIONS
 * ("ask"). Both reach the run's surface as questions; an unanswered one is given up after QUESTION_TIMEOUT_SECONDS,
 * so nothing waits on a human forever. Model list fetches, auto-update and sharing are off.
 */
import type { ModelConfig, PermissionRule } from "../config/config.ts";

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

/** Who answers what: the question tool on or off, and the tool calls that need an approval. */
export interface AskPolicy {
  questions: boolean;
  permissions: readonly PermissionRule[];
}

/** OpenCode's permission rules (the last matching rule wins): allow everything, then the asks. */
export function permissionRules(policy: AskPolicy): Record<string, unknown> {
  const rules: Record<string, unknown> = { "*": "allow" };
  for (const r of policy.permissions) {
    if (r.pattern === undefined) rules[r.tool] = "ask";
    else {
      const prev = rules[r.tool];
      const obj = prev && typeof prev === "object" ? (prev as Record<string, string>) : { "*": typeof prev === "string" ? prev : "allow" };
      obj[r.pattern] = "ask";
      rules[r.tool] = obj;
    }
  }
  rules.question = policy.questions ? "allow" : "deny";
  return rules;
}

export function opencodeConfig(model: ModelConfig, gateway: GatewayAccess, policy: AskPolicy = { questions: false, permissions: [] }): Record<string, unknown> {
  const permission = permissionRules(policy);
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
export function opencodeEnv(opts: { model: ModelConfig; gateway: GatewayAccess; home: string; password: string; policy?: AskPolicy }): Record<string, string> {
  return {
    HOME: opts.home,
    XDG_CONFIG_HOME: `${opts.home}/.config`,
    XDG_DATA_HOME: `${opts.home}/.local/share`,
    XDG_STATE_HOME: `${opts.home}/.local/state`,
    XDG_CACHE_HOME: `${opts.home}/.cache`,
    OPENCODE_CONFIG_CONTENT: JSON.stringify(opencodeConfig(opts.model, opts.gateway, opts.policy)),
    OPENCODE_SERVER_PASSWORD: opts.password,
    OPENCODE_DISABLE_MODELS_FETCH: "1",
    OPENCODE_DISABLE_AUTOUPDATE: "1",
    OPENCODE_DISABLE_LSP_DOWNLOAD: "1",
    OPENCODE_DISABLE_SHARE: "1",
    OPENCODE_DISABLE_DEFAULT_PLUGINS: "1",
  };
}
