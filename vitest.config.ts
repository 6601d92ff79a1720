import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["tests/**/*.test.ts"],
    // Bounds, not timing goals: a real run provisions a hardened sandbox and starts OpenCode on a busy 2-core machine,
    // and many tests wait up to 120 s for it inside.
    testTimeout: 180_000,
    hookTimeout: 180_000, // a server with a new embedded database runs initdb first
    pool: "forks",
    // Each file starts its own servers, databases and sandboxes; two at a time suits a 2-core machine.
    maxWorkers: 2,
    reporters: process.env.CI ? ["default"] : ["default"],
  },
});
