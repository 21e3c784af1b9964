import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { killAllWorkers } from "../support/fault-procs.ts";
import { type Env, openEnv, runKillStorm, type StormOptions, stormFigures } from "../support/fault-scenarios.ts";
import { reportFigure, summary } from "../support/history.ts";
import { type Cluster, startCluster } from "../support/pg-cluster.ts";

// The kill storm on workflows: jobs that wait for other jobs, while workers are
// SIGKILLed mid-graph. A job's release is written by the trigger in its parent's
// end, so no kill can leave a child waiting for a parent that has ended.
let cluster: Cluster;
let env: Env;

beforeAll(async () => {
  cluster = await startCluster();
  env = await openEnv(cluster.url, "graphs");
});
afterEach(killAllWorkers);
afterAll(async () => {
  await killAllWorkers();
  await env?.close();
  await cluster?.destroy();
});

// Enough work that the storm cannot miss it on a fast machine: the queue is
// paused while the graphs are enqueued, so all of it runs after the storm's
// clock starts, and 250 graphs of 15 jobs whose handlers sleep 20 to 79 ms
// (49.5 on average) keep 30 slots busy for about 250 * 15 * 49.5 / 30 ms =
// 6.2 s at the very least (the graphs' order only adds to it), while a kill
// comes every 1.2 to 2.4 s: two land by 4.8 s whatever the machine's speed.
const GRAPHS = Number(process.env.GRAPH_STORM_GRAPHS ?? 250);

describe("kill storm on workflows", () => {
  it("3 workers run 250 graphs (a root, 10 children, a fan-in, a chain of 3 after it) while one is SIGKILLed every few seconds: every job completes, none starts before its parents ran", async () => {
    const queueName = "graphs";
    const ms = () => ({ ms: 20 + Math.floor(Math.random() * 60) });
    const options: StormOptions = {
      env,
      queueName,
      jobs: GRAPHS * 15,
      workers: 3,
      concurrency: 10,
      handlerMs: [20, 80],
      killEveryMs: [1200, 2400],
      maxKills: 1000,
      sameIdEvery: 4,
      timing: { heartbeatIntervalMs: 500, staleAfterMs: 2500, reaperIntervalMs: 500, pollIntervalMs: 1000 },
      drainTimeoutMs: 180_000,
      log: (l) => console.log(`[graph-storm] ${l}`),
      async enqueue() {
        await env.queue.pauseQueue(queueName);
        const ids: string[] = [];
        for (let g = 0; g < GRAPHS; g++) {
          const children = Array.from({ length: 10 }, (_, i) => `c${i}`);
          const jobs = await env.queue.enqueueFlow([
            { name: "root", task: "record", queue: queueName, payload: ms() },
            ...children.map((name) => ({ name, task: "record", queue: queueName, payload: ms(), parents: ["root"] })),
            { name: "fan-in", task: "record", queue: queueName, payload: ms(), parents: children },
            { name: "s1", task: "record", queue: queueName, payload: ms(), parents: ["fan-in"] },
            { name: "s2", task: "record", queue: queueName, payload: ms(), parents: ["s1"] },
            { name: "s3", task: "record", queue: queueName, payload: ms(), parents: ["s2"] },
          ]);
          ids.push(...jobs.map((j) => j.id));
        }
        await env.queue.resumeQueue(queueName);
        return ids;
      },
    };
    const r = await runKillStorm(options);
    const figures = stormFigures(r, options);
    await reportFigure("graph-kill-storm", { ...figures, history: summary(r.audit) });

    expect(r.audit.missing).toEqual([]);
    expect(r.audit.wrongState).toEqual([]);
    expect(r.audit.completedWithoutRun).toEqual([]);
    expect(r.audit.neverRan).toEqual([]);
    // (at least two kills land while they run: see GRAPHS)
    expect(r.kills.length).toBeGreaterThanOrEqual(2);
    expect(r.unexplained).toEqual([]);
    expect(figures.extraRuns).toBeLessThanOrEqual(figures.strandedAtKills);

    // no run of a child began before its parent's last run was recorded (database clock)
    const early = await env.sql.unsafe(`
      select d.parent_id::text, d.child_id::text from ${env.s}.job_deps d
      where (select min(c.at) from ${env.s}.runs c where c.job_id = d.child_id)
          < (select max(p.at) from ${env.s}.runs p where p.job_id = d.parent_id)`);
    expect(early).toEqual([]);
    const [open] = await env.sql.unsafe(`select count(*)::int as n from ${env.s}.job_deps where state <> 'd'`);
    expect(open!.n).toBe(0);
    expect(r.exitCodes.every((c) => c === 0)).toBe(true);
  });
});
