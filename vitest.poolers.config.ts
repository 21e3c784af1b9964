import { defineConfig } from "vitest/config";

// The pooler suite (npm run test:poolers): every file starts its own PgBouncer in
// transaction mode in front of the test Postgres (test/support/pgbouncer.ts) and
// runs queues and workers through it. It needs Debian's pgbouncer (apt-get install
// pgbouncer) and fails, never skips, without it. Files run one at a time.
export default defineConfig({
  test: {
    include: ["test/poolers/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: "forks",
    fileParallelism: false,
    reporters: ["default"],
  },
});
