import { fileURLToPath } from "node:url";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { DATABASE_URL, deadline, testDb, until, untilWaitingOnLock } from "./support/db.ts";
import { spawnWorker, type WorkerProcess } from "./support/processes.ts";
import { start } from "./support/spawn.ts";

const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;
const s = `"${schema}"`;
const spawned: WorkerProcess[] = [];

beforeAll(async () => {
  await sql.unsafe(`create table ${s}.runs (job_id bigint not null, worker_id text not null)`);
});

afterEach(async () => {
  for (const p of spawned.splice(0)) {
    p.child.kill("SIGKILL");
    await p.exited;
  }
});

describe("several worker processes", () => {
  it("four processes drain thousands of jobs: each completes exactly once", async () => {
    const total = 4000;
    const procs = await Promise.all(
      [1, 2, 3, 4].map((n) => spawnWorker({ url: DATABASE_URL, schema, id: `drain-${n}`, queues: ["drain"], concurrency: 8 })),
    );
    spawned.push(...procs);
    for (let i = 0; i < total; i += 500) {
      await queue.enqueueMany(Array.from({ length: 500 }, (_, k) => ({ task: "record", queue: "drain", payload: { n: i + k } })));
    }
    await until(async () => {
      const [r] = await sql.unsafe(`select count(*)::int as n from ${s}.jobs where queue = 'drain' and status = 'completed'`);
      return r!.n === total;
    }, 60_000, 100);
    const [runs] = await sql.unsafe(`select count(*)::int as runs, count(distinct job_id)::int as jobs from ${s}.runs`);
    expect(runs).toEqual({ runs: total, jobs: total });
    const [left] = await sql.unsafe(`select count(*)::int as n from ${s}.jobs where queue = 'drain' and status <> 'completed'`);
    expect(left!.n).toBe(0);
    const byWorker = await sql.unsafe(`select worker_id, count(*)::int as n from ${s}.runs group by 1`);
    expect(byWorker.length).toBeGreaterThan(1);

    // SIGTERM stops each one cleanly: exit 0 and its row removed
    for (const p of procs) p.child.kill("SIGTERM");
    expect(await Promise.all(procs.map((p) => p.exited))).toEqual([0, 0, 0, 0]);
    spawned.length = 0;
    const [w] = await sql.unsafe(`select count(*)::int as n from ${s}.workers where id like 'drain-%'`);
    expect(w!.n).toBe(0);
  });

  it("a worker killed with SIGKILL mid-job: another worker completes the job within staleAfterMs plus one reaper interval", async () => {
    const timing = { heartbeatIntervalMs: 200, staleAfterMs: 1000, reaperIntervalMs: 250 };
    const victim = await spawnWorker({ url: DATABASE_URL, schema, id: "victim", queues: ["kill"], ...timing });
    spawned.push(victim);
    const job = await queue.enqueue("hang", {}, { queue: "kill" });
    await victim.line(new RegExp(`^started ${job.id}$`), deadline());

    const rescuer = db.worker({ queues: ["kill"], ...timing, tasks: { hang: async () => "rescued" } });
    await rescuer.start();
    const done = rescuer.waitFor("job:completed", (e) => e.job.id === job.id, deadline(15_000));
    const killedAt = Date.now();
    victim.child.kill("SIGKILL");
    expect(await victim.exited).toBe("SIGKILL");
    await done;
    const elapsed = Date.now() - killedAt;
    // The bound is the protocol's: the heartbeat goes stale after staleAfterMs, the next
    // reaper pass (at most one interval later) takes the job back and announces it.
    // 1 s of slack covers process scheduling on a busy 2-core machine.
    expect(elapsed).toBeLessThan(timing.staleAfterMs + timing.reaperIntervalMs + 1000);
    const stored = await queue.getJob(job.id);
    expect(stored).toMatchObject({ status: "completed", attempts: 2, result: "rescued" });
    expect(stored!.errors).toMatchObject([{ name: "WorkerLostError", worker: "victim" }]);
  });
});

describe("a second stop", () => {
  const fixture = fileURLToPath(new URL("./fixtures/stop-twice.mjs", import.meta.url));

  it("with no grace, while a claim waits on a lock: the stop cancels the claim and the process exits by itself", async () => {
    // A queue with a limit: a claim that finds a job of it locks the queue's row, which the test
    // holds, so the claim of the second job waits.
    await queue.configureQueue("stop-cut", { concurrency: 5 });
    const job = await queue.enqueue("hang", {}, { queue: "stop-cut" });
    const child = start(process.execPath, [fixture, JSON.stringify({ url: DATABASE_URL, schema, id: "stop-cut", queues: ["stop-cut"] })]);
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => (locked = r));
    let holding: Promise<unknown> | undefined;
    let second!: { id: string };
    try {
      await child.waitForOutput(new RegExp(`started ${job.id}`));
      holding = sql.begin(async (tx) => {
        await tx.unsafe(`select 1 from ${s}.queues where name = 'stop-cut' for update`);
        locked();
        await released;
      });
      await isLocked;
      second = await queue.enqueue("hang", {}, { queue: "stop-cut" });
      await untilWaitingOnLock(sql, `%${schema}".claim_rows%`);
      child.child.kill("SIGTERM");
      await child.waitForOutput(/^stopped$/m);
      // The lock is held until the process has exited: nothing of the stopped worker may wait on it.
      // (before, the claim it left out held a connection, and the process with it, until the lock went)
      const exited = await Promise.race([child.exited, new Promise<string>((r) => deadline(15_000).addEventListener("abort", () => r("still running")))]);
      expect(exited).toBe(0);
    } finally {
      if (child.child.exitCode === null) child.child.kill("SIGKILL");
      release();
      await holding;
    }
    expect(await queue.getJob(job.id)).toMatchObject({ status: "queued", attempts: 0 });
    expect(await queue.getJob(second.id)).toMatchObject({ status: "queued", attempts: 0 });
    expect((await queue.listWorkers()).map((w) => w.id)).not.toContain("stop-cut");
  });
});
