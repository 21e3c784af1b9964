import { configDefaults, defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "examples/**/*.test.ts"],
    // test/poolers/ needs Debian's pgbouncer, which npm cannot bring: its own suite, npm run test:poolers.
    exclude: [...configDefaults.exclude, "test/poolers/**"],
    testTimeout: 60_000,
    hookTimeout: 30_000,
    pool: "forks",
    // Tests wait on events with deadlines; a failure should show which wait ran out.
    reporters: ["default"],
  },
});
