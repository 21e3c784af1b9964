import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { killAllWorkers } from "../support/fault-procs.ts";
import { type Env, openEnv, runKillStorm, type StormOptions, stormFigures } from "../support/fault-scenarios.ts";
import { reportFigure, summary } from "../support/history.ts";
import { type Cluster, startCluster } from "../support/pg-cluster.ts";

let cluster: Cluster;
let env: Env;

beforeAll(async () => {
  cluster = await startCluster();
  env = await openEnv(cluster.url, "storm");
});
afterEach(killAllWorkers);
afterAll(async () => {
  await killAllWorkers();
  await env?.close();
  await cluster?.destroy();
});

describe("kill storm", () => {
  it("4 workers drain 20,000 jobs while a random one is SIGKILLed and replaced every few seconds: nothing lost, reruns only of what the kills stranded, reclaim within staleAfterMs + one reaper interval", async () => {
    const options: StormOptions = {
      env,
      queueName: "storm",
      jobs: Number(process.env.STORM_JOBS ?? 20_000),
      workers: 4,
      concurrency: 10,
      handlerMs: [20, 80],
      killEveryMs: [1500, 3000],
      maxKills: 1000,
      sameIdEvery: 4,
      timing: { heartbeatIntervalMs: 500, staleAfterMs: 2500, reaperIntervalMs: 500, pollIntervalMs: 1000 },
      drainTimeoutMs: 120_000,
      log: (l) => console.log(`[storm] ${l}`),
    };
    const r = await runKillStorm(options);
    const figures = stormFigures(r, options);
    await reportFigure("kill-storm", { ...figures, history: summary(r.audit) });

    // nothing lost: every acknowledged job is completed, by a recorded run of its last attempt
    expect(r.audit.missing).toEqual([]);
    expect(r.audit.wrongState).toEqual([]);
    expect(r.audit.completedWithoutRun).toEqual([]);
    expect(r.audit.silentAttempts).toEqual([]);
    expect(r.audit.neverRan).toEqual([]);
    // at least once, and more only where a kill stranded the job
    expect(r.kills.length).toBeGreaterThanOrEqual(4);
    expect(r.unexplained).toEqual([]);
    expect(r.unrecorded).toEqual([]);
    expect(r.mislabeled).toEqual([]);
    expect(figures.ranTwice).toBeLessThanOrEqual(figures.strandedAtKills);
    expect(figures.extraRuns).toBeLessThanOrEqual(figures.strandedAtKills);
    // reclaim within the lease bound; 1 s of slack for timers on a loaded 2-core machine
    const bound = options.timing.staleAfterMs! + options.timing.reaperIntervalMs! + 1000;
    expect(Math.max(...r.reclaimMs.reaper)).toBeLessThan(bound);
    // every worker left cleanly at the end, and the dead ones' rows were reaped
    expect(r.exitCodes.every((c) => c === 0)).toBe(true);
    expect(r.workersLeft).toBe(0);
  });
});
