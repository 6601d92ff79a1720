/**
 * `deckhand e2b template [--name deckhand] [--cpu 2] [--memory-mb 2048] [--dockerfile]`: build the Deckhand sandbox
 * template on E2B (needs E2B_API_KEY), or print it as a Dockerfile.
 */
import { parseArgs } from "node:util";
import { buildTemplate, DEFAULT_TEMPLATE_NAME, opencodeVersion, templateDockerfile } from "./template.ts";
import { explainE2BError } from "./e2b-errors.ts";

export const E2B_USAGE = `  deckhand e2b template [--name deckhand] [--cpu 2] [--memory-mb 2048] [--dockerfile]
                                                   build the E2B sandbox template (or print it as a Dockerfile)`;

export async function e2bCommand(args: string[], env: NodeJS.ProcessEnv, out: NodeJS.WritableStream): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== "template") throw new UsageError(`Usage:\n${E2B_USAGE}`);
  const { values } = parseArgs({
    args: rest,
    options: { name: { type: "string" }, cpu: { type: "string" }, "memory-mb": { type: "string" }, dockerfile: { type: "boolean" } },
  });
  if (values.dockerfile) {
    out.write(templateDockerfile());
    return 0;
  }
  const apiKey = env.E2B_API_KEY;
  if (!apiKey) throw new UsageError("E2B_API_KEY is not set: create a key at https://e2b.dev/dashboard?tab=keys and export it");
  const num = (v: string | undefined, what: string) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new UsageError(`--${what} must be a positive whole number`);
    return n;
  };
  const name = values.name ?? env.E2B_TEMPLATE ?? DEFAULT_TEMPLATE_NAME;
  out.write(`Building E2B template "${name}" (opencode ${opencodeVersion()}); this takes a few minutes…\n`);
  try {
    const built = await buildTemplate({
      apiKey,
      apiUrl: env.E2B_API_URL || undefined,
      domain: env.E2B_DOMAIN || undefined,
      name,
      cpuCount: num(values.cpu, "cpu"),
      memoryMB: num(values["memory-mb"], "memory-mb"),
    });
    out.write(`Template "${built.name}" is ready (id ${built.templateId}). Set E2B_TEMPLATE=${built.name} and SANDBOX_PROVIDER=e2b.\n`);
    return 0;
  } catch (e) {
    throw new UsageError(`Building the template failed: ${explainE2BError(e, { doing: "building the template", apiUrl: env.E2B_API_URL }).message}`);
  }
}

/** A problem the user can fix; main.ts prints the message without a stack. */
export class UsageError extends Error {}
