/**
 * What can be tested of the container without a container engine: the entrypoint script (run as the image runs it)
 * and that compose.yaml uses only variables documented in .env.example.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { tmpDir } from "../helpers/harness.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const read = (f: string) => fs.readFileSync(path.join(ROOT, f), "utf8");

const documented = new Set([...read(".env.example").matchAll(/^#?\s*([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1]!));

describe("container files", () => {
  it("the entrypoint runs deckhand: a command as given, options alone go to serve", () => {
    const entry = path.join(ROOT, "docker/entrypoint.sh");
    const env = { PATH: process.env.PATH!, HOME: process.env.HOME!, DATA_DIR: tmpDir() };
    const version = spawnSync(entry, ["--version"], { env, encoding: "utf8", timeout: 60_000 });
    expect(version.status, version.stderr).toBe(0);
    expect(version.stdout).toMatch(/^deckhand \d+\.\d+\.\d+$/m);
    const help = spawnSync(entry, ["help", "serve"], { env, encoding: "utf8", timeout: 60_000 });
    expect(help.stdout).toContain("--role web|worker|all");
    // Options alone are serve's: a bad role is refused by serve, with its usage, before anything starts.
    const bad = spawnSync(entry, ["--role", "cook"], { env, encoding: "utf8", timeout: 60_000 });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--role must be web, worker or all/);
    expect(bad.stderr).not.toMatch(/at .*\.ts:\d+/);
  }, 120_000);

  it("every variable compose.yaml sets or reads is documented in .env.example", () => {
    const compose = read("compose.yaml");
    const referenced = [...compose.matchAll(/\$\{([A-Z][A-Z0-9_]*)/g)].map((m) => m[1]!);
    // The keys of the deckhand services' environment blocks (the postgres image's own variables are its business).
    const blocks = compose.split(/\n  (?=\w[\w-]*:\n)/).filter((b) => /^(deckhand|worker):/.test(b));
    expect(blocks).toHaveLength(2);
    const keys = blocks.flatMap((b) => [...(/\n    environment:\n((?: {6}.*\n)+)/.exec(b)?.[1] ?? "").matchAll(/^ {6}([A-Z][A-Z0-9_]*):/gm)].map((m) => m[1]!));
    expect(keys).toEqual(expect.arrayContaining(["DATABASE_URL", "PUBLIC_URL"]));
    const missing = [...new Set([...referenced, ...keys])].filter((v) => !documented.has(v));
    expect(missing, `add these to .env.example: ${missing.join(", ")}`).toEqual([]);
  });

  it("the image installs the packages CI installs, through the same script, and runs as a non-root user", () => {
    const dockerfile = read("Dockerfile");
    expect(read(".ci/run")).toContain(".ci/system-packages.sh");
    expect(dockerfile).toMatch(/system-packages\.sh/);
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile.match(/^FROM /gm)?.length).toBeGreaterThanOrEqual(2);
    expect(dockerfile).toMatch(/HEALTHCHECK[\s\S]*\/readyz/);
  });
});
