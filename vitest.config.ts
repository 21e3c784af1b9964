import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 30_000,
    pool: "forks",
    // Tests wait on events with deadlines; a failure should show which wait ran out.
    reporters: ["default"],
  },
});
