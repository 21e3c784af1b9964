import { defineConfig } from "vitest/config";

// The fault suite (npm run test:faults): every file starts its own Postgres cluster
// and worker processes, kills and restarts them. Files run one at a time so that
// timings (reclaim, recovery) are measured on a machine that is not also running
// another scenario. Figures go to test/artifacts/faults-report.jsonl (or $FAULTS_REPORT).
process.env.FAULTS_REPORT ??= "test/artifacts/faults-report.jsonl";

export default defineConfig({
  test: {
    include: ["test/faults/**/*.faults.ts"],
    globalSetup: ["test/faults/global-setup.ts"],
    testTimeout: 300_000,
    hookTimeout: 120_000,
    pool: "forks",
    fileParallelism: false,
    reporters: ["default"],
  },
});
