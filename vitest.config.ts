import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["tests/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Each file starts its own servers, databases and sandboxes; two at a time suits a 2-core machine.
    maxWorkers: 2,
    reporters: process.env.CI ? ["default"] : ["default"],
  },
});
