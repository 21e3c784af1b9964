import * as v from "valibot";
import { describe, expect, it } from "vitest";
import {
  defineTask,
  JobCancelledError,
  JobReleasedError,
  JobTimeoutError,
  PermanentError,
  PgPulseError,
  type WorkerEvents,
} from "../src/index.ts";
import { deadline, gate, testDb, until, untilWaitingOnLock } from "./support/db.ts";

const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;
const jobs = `"${schema}".jobs`;

async function row(id: string) {
  const [r] = await sql.unsafe(`select * from ${jobs} where id = $1`, [id]);
  return r!;
}

describe("worker", () => {
  it("runs a job, stores its result and progress, and reports events", async () => {
    const mid = gate();
    const go = gate();
    const w = db.worker({
      queues: ["basic"],
      progressIntervalMs: 10,
      tasks: {
        greet: async (payload: { name: string }, ctx) => {
          ctx.progress(40);
          mid.open();
          await go.promise;
          return { hello: payload.name, attempt: ctx.job.attempt };
        },
      },
    });
    await w.start();
    const job = await queue.enqueue("greet", { name: "ada" }, { queue: "basic" });
    await mid.promise;
    await until(async () => (await row(job.id)).progress === 40);
    expect((await row(job.id)).status).toBe("running");
    expect((await row(job.id)).worker_id).toBe(w.id);
    const done = w.waitFor("job:completed", (e) => e.job.id === job.id, deadline());
    go.open();
    expect((await done).result).toEqual({ hello: "ada", attempt: 1 });
    const stored = await queue.getJob(job.id);
    expect(stored).toMatchObject({ status: "completed", progress: 100, attempts: 1, result: { hello: "ada", attempt: 1 }, workerId: null });
    expect(stored!.startedAt!.getTime()).toBeGreaterThanOrEqual(stored!.createdAt.getTime());
    expect(stored!.finishedAt!.getTime()).toBeGreaterThanOrEqual(stored!.startedAt!.getTime());
  });

  it("never starts a delayed job early", async () => {
    const started: { id: string; at: number }[] = [];
    const w = db.worker({ queues: ["delayed"], pollIntervalMs: 50, tasks: { d: async (_p, ctx) => void started.push({ id: ctx.job.id, at: Date.now() }) } });
    await w.start();
    const t0 = Date.now();
    const delayed = await queue.enqueue("d", {}, { queue: "delayed", delayMs: 400 });
    const now = await queue.enqueue("d", {}, { queue: "delayed" });
    await w.waitFor("job:completed", (e) => e.job.id === delayed.id, deadline());
    expect(started.map((s) => s.id)).toEqual([now.id, delayed.id]);
    expect(started[1]!.at - t0).toBeGreaterThanOrEqual(400);
    const r = await row(delayed.id);
    expect(r.started_at.getTime()).toBeGreaterThanOrEqual(r.run_at.getTime());
  });

  it("retries with exponential backoff, keeping each attempt's error, then fails", async () => {
    const starts: number[] = [];
    const retried: WorkerEvents["job:retried"][] = [];
    const w = db.worker({
      queues: ["retry"],
      pollIntervalMs: 5000,
      tasks: {
        flaky: defineTask({
          name: "flaky",
          backoff: { baseMs: 80 },
          handler: async () => {
            starts.push(Date.now());
            throw new Error(`boom ${starts.length}`);
          },
        }),
      },
    });
    w.on("job:retried", (e) => retried.push(e));
    await w.start();
    const job = await queue.enqueue("flaky", {}, { queue: "retry", maxAttempts: 3 });
    const failed = await w.waitFor("job:failed", (e) => e.job.id === job.id, deadline());
    expect(failed.error.message).toBe("boom 3");
    expect(starts).toHaveLength(3);
    // equal jitter: the delay after attempt n is in [base*2^(n-1)/2, base*2^(n-1)]
    expect(retried.map((r) => r.delayMs)).toSatisfy((d: number[]) => d[0]! >= 40 && d[0]! <= 80 && d[1]! >= 80 && d[1]! <= 160);
    expect(starts[1]! - starts[0]!).toBeGreaterThanOrEqual(retried[0]!.delayMs - 5);
    expect(starts[2]! - starts[1]!).toBeGreaterThanOrEqual(retried[1]!.delayMs - 5);
    const stored = await queue.getJob(job.id);
    expect(stored).toMatchObject({ status: "failed", attempts: 3 });
    expect(stored!.errors.map((e) => [e.attempt, e.name, e.message, e.worker])).toEqual([
      [1, "Error", "boom 1", w.id],
      [2, "Error", "boom 2", w.id],
      [3, "Error", "boom 3", w.id],
    ]);
    expect(stored!.errors[0]!.stack).toContain("boom 1");
    expect(new Date(stored!.errors[1]!.at).getTime() - new Date(stored!.errors[0]!.at).getTime()).toBeGreaterThanOrEqual(retried[0]!.delayMs - 5);
  });

  it("fails at once on a PermanentError, and records thrown non-Errors", async () => {
    const w = db.worker({
      queues: ["perm"],
      tasks: {
        perm: async () => {
          throw new PermanentError("bad card");
        },
        weird: async () => {
          throw { code: 42 };
        },
        hostile: async () => {
          throw Object.create(null, {
            toJSON: { value: () => { throw new Error("no JSON"); } },
            toString: { value: () => { throw new Error("no string"); } },
          });
        },
      },
    });
    await w.start();
    const a = await queue.enqueue("perm", {}, { queue: "perm" });
    await w.waitFor("job:failed", (e) => e.job.id === a.id, deadline());
    expect(await queue.getJob(a.id)).toMatchObject({ status: "failed", attempts: 1, errors: [{ name: "PermanentError", message: "bad card" }] });
    const b = await queue.enqueue("weird", {}, { queue: "perm", maxAttempts: 1 });
    await w.waitFor("job:failed", (e) => e.job.id === b.id, deadline());
    expect((await queue.getJob(b.id))!.errors[0]).toMatchObject({ name: "NonErrorObject", message: '{"code":42}' });
    const c = await queue.enqueue("hostile", {}, { queue: "perm", maxAttempts: 1 });
    await w.waitFor("job:failed", (e) => e.job.id === c.id, deadline());
    expect((await queue.getJob(c.id))!.errors[0]).toMatchObject({ name: "NonErrorObject", message: "(a thrown value that cannot be printed)" });
  });

  it("times out an attempt: the signal aborts with JobTimeoutError, and a handler that ignores it cannot hold the job", async () => {
    const reasons: unknown[] = [];
    const w = db.worker({
      queues: ["timeout"],
      tasks: {
        slow: async (_p, ctx) => {
          await new Promise((_, reject) => ctx.signal.addEventListener("abort", () => (reasons.push(ctx.signal.reason), reject(ctx.signal.reason))));
        },
        deaf: () => new Promise(() => {}),
      },
    });
    await w.start();
    const a = await queue.enqueue("slow", {}, { queue: "timeout", timeoutMs: 50, maxAttempts: 1 });
    await w.waitFor("job:failed", (e) => e.job.id === a.id, deadline());
    expect(reasons[0]).toBeInstanceOf(JobTimeoutError);
    expect(await queue.getJob(a.id)).toMatchObject({ status: "failed", errors: [{ name: "JobTimeoutError", message: "job timed out after 50 ms" }] });

    const b = await queue.enqueue("deaf", {}, { queue: "timeout", timeoutMs: 50, maxAttempts: 2 });
    await w.waitFor("job:retried", (e) => e.job.id === b.id, deadline());
    expect(w.running).toBe(0);
  });

  it("vacuums the jobs table when autovacuum is off for it and dead rows pile up", async () => {
    await sql.unsafe(`alter table ${jobs} set (autovacuum_enabled = false)`);
    const vacuumCount = async () =>
      Number((await sql.unsafe(`select vacuum_count from pg_stat_user_tables where relid = $1::regclass`, [jobs]))[0]!.vacuum_count);
    const before = await vacuumCount();
    const w = db.worker({ queues: ["vac"], concurrency: 16, pruneIntervalMs: 50, tasks: { v: async () => {} } });
    await queue.enqueueMany(Array.from({ length: 1200 }, () => ({ task: "v", queue: "vac" })));
    const vacuumed = w.waitFor("jobs:vacuumed", () => true, deadline(30_000));
    await w.start();
    await vacuumed;
    await until(async () => (await vacuumCount()) > before);
    await sql.unsafe(`alter table ${jobs} reset (autovacuum_enabled)`);
  });

  it("a signal first read after the timeout is already aborted, with the reason", async () => {
    const go = gate();
    const read = gate<AbortSignal>();
    const w = db.worker({
      queues: ["late-signal"],
      tasks: {
        late: async (_p, ctx) => {
          await go.promise;
          read.open(ctx.signal);
        },
      },
    });
    await w.start();
    const job = await queue.enqueue("late", {}, { queue: "late-signal", timeoutMs: 50, maxAttempts: 1 });
    await w.waitFor("job:failed", (e) => e.job.id === job.id, deadline());
    go.open();
    const signal = await read.promise;
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBeInstanceOf(JobTimeoutError);
  });

  it("cancels a running job: its signal aborts and it ends as cancelled", async () => {
    const started = gate();
    let reason: unknown;
    const w = db.worker({
      queues: ["cancel"],
      tasks: {
        long: async (_p, ctx) => {
          started.open();
          await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
          reason = ctx.signal.reason;
          throw ctx.signal.reason;
        },
      },
    });
    await w.start();
    const job = await queue.enqueue("long", {}, { queue: "cancel" });
    await started.promise;
    const cancelled = w.waitFor("job:cancelled", (e) => e.job.id === job.id, deadline());
    const asked = await queue.cancel(job.id);
    expect(asked.status).toBe("running");
    expect(asked.cancelRequestedAt).toBeInstanceOf(Date);
    await cancelled;
    expect(reason).toBeInstanceOf(JobCancelledError);
    expect(await queue.getJob(job.id)).toMatchObject({ status: "cancelled", errors: [{ name: "JobCancelledError" }] });
  });

  it("a cancel whose notification was missed is picked up by the heartbeat", async () => {
    const started = gate();
    const w = db.worker({
      queues: ["cancel2"],
      heartbeatIntervalMs: 50,
      tasks: { long: (_p, ctx) => (started.open(), new Promise((_, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason)))) },
    });
    await w.start();
    const job = await queue.enqueue("long", {}, { queue: "cancel2" });
    await started.promise;
    // ask for the cancel directly in SQL, with no notification
    await sql.unsafe(`update ${jobs} set cancel_requested_at = now() where id = $1`, [job.id]);
    await w.waitFor("job:cancelled", (e) => e.job.id === job.id, deadline());
    expect((await queue.getJob(job.id))!.status).toBe("cancelled");
  });

  it("graceful stop waits for running jobs, then gives back the rest without counting the attempt", async () => {
    const started = gate();
    const finishQuick = gate();
    let releasedReason: unknown;
    const w = db.worker({
      queues: ["stop"],
      concurrency: 2,
      tasks: {
        quick: async () => {
          await finishQuick.promise;
          return "done";
        },
        stuck: (_p, ctx) =>
          new Promise((_, reject) => {
            started.open();
            ctx.signal.addEventListener("abort", () => reject((releasedReason = ctx.signal.reason)));
          }),
      },
    });
    await w.start();
    const quick = await queue.enqueue("quick", {}, { queue: "stop" });
    const stuck = await queue.enqueue("stuck", {}, { queue: "stop" });
    await started.promise;
    await until(() => w.running === 2);
    const stopped = w.stop({ gracefulStopMs: 300 });
    finishQuick.open();
    await stopped;
    expect(releasedReason).toBeInstanceOf(JobReleasedError);
    expect(await queue.getJob(quick.id)).toMatchObject({ status: "completed", result: "done" });
    expect(await queue.getJob(stuck.id)).toMatchObject({ status: "queued", attempts: 0, workerId: null, startedAt: null });
    const [{ n }] = (await sql.unsafe(`select count(*)::int as n from "${schema}".workers where id = $1`, [w.id])) as unknown as [{ n: number }];
    expect(n).toBe(0);

    const next = db.worker({ queues: ["stop"], tasks: { stuck: async () => "second time" } });
    const done = next.waitFor("job:completed", (e) => e.job.id === stuck.id, deadline());
    await next.start();
    await done;
    expect(await queue.getJob(stuck.id)).toMatchObject({ status: "completed", attempts: 1 });
  });

  it("validates typed payloads again before running: a mismatch fails for good", async () => {
    const typed = defineTask({ name: "typed", schema: v.object({ n: v.number() }), handler: async ({ n }) => n * 2 });
    const w = db.worker({ queues: ["typed"], tasks: { typed } });
    await w.start();
    // bypass enqueue-time validation, as a producer in another language might
    const [bad] = await sql.unsafe(`select id::text from "${schema}".enqueue('typed', '{"n":"two"}', queue => 'typed')`);
    const failed = await w.waitFor("job:failed", (e) => e.job.id === bad!.id, deadline());
    expect(failed.error.name).toBe("PermanentError");
    expect(failed.error.message).toMatch(/^payload does not match the task's schema: n: /);
    expect((await queue.getJob(bad!.id))!.attempts).toBe(1);
    const good = await queue.enqueue(typed, { n: 21 }, { queue: "typed" });
    expect((await w.waitFor("job:completed", (e) => e.job.id === good.id, deadline())).result).toBe(42);
  });

  it("a result that cannot be stored fails the job with a clear reason", async () => {
    const w = db.worker({ queues: ["result"], tasks: { r: async () => ({ n: 1n }) } });
    await w.start();
    const job = await queue.enqueue("r", {}, { queue: "result" });
    const failed = await w.waitFor("job:failed", (e) => e.job.id === job.id, deadline());
    expect(failed.error.message).toMatch(/returned a result that cannot be stored: result.n is a bigint/);
  });

  it("leaves jobs for tasks it does not know queued, for a worker that does", async () => {
    const w = db.worker({ queues: ["mixed"], tasks: { known: async () => 1 } });
    await w.start();
    const other = await queue.enqueue("unknown-here", {}, { queue: "mixed" });
    const known = await queue.enqueue("known", {}, { queue: "mixed" });
    await w.waitFor("job:completed", (e) => e.job.id === known.id, deadline());
    expect(await w.sweep()).toBe(0);
    expect((await queue.getJob(other.id))!.status).toBe("queued");
  });

  it("takes earlier queues first, then higher priority, then older", async () => {
    const order: string[] = [];
    for (const [q, p, name] of [["low", 0, "low-0"], ["high", 0, "high-0"], ["high", 5, "high-5"], ["low", 9, "low-9"], ["high", 0, "high-0b"]] as const) {
      await queue.enqueue("rec", { name }, { queue: q, priority: p });
    }
    const w = db.worker({ queues: ["high", "low"], concurrency: 1, tasks: { rec: async (p: { name: string }) => void order.push(p.name) } });
    let done = 0;
    const all = new Promise<void>((r) => w.on("job:completed", () => ++done === 5 && r()));
    await w.start();
    await all;
    expect(order).toEqual(["high-5", "high-0", "high-0b", "low-9", "low-0"]);
  });

  it("claims in batches, ahead of the free slots while short jobs back up, never running more than its concurrency", async () => {
    let runningNow = 0;
    let maxRunning = 0;
    const w = db.worker({
      queues: ["batch"],
      concurrency: 8,
      tasks: {
        n: async () => {
          maxRunning = Math.max(maxRunning, ++runningNow);
          await new Promise((r) => setTimeout(r, 1));
          runningNow--;
          return null;
        },
      },
    });
    const claims: number[] = [];
    w.on("worker:claimed", (e) => e.jobs.length && claims.push(e.jobs.length));
    await queue.enqueueMany(Array.from({ length: 400 }, () => ({ task: "n", queue: "batch" })));
    let done = 0;
    const all = new Promise<void>((r) => w.on("job:completed", () => ++done === 400 && r()));
    await w.start();
    await all;
    expect(claims.reduce((a, b) => a + b, 0)).toBe(400);
    expect(claims[0]).toBe(8); // no run time known yet: the free slots only
    expect(Math.max(...claims)).toBeGreaterThan(8); // then ahead of them
    expect(claims.length).toBeLessThan(400 / 8);
    expect(maxRunning).toBe(8);
  });

  it("claims nothing ahead for long jobs, and gives back jobs claimed ahead when it stops", async () => {
    const w = db.worker({ queues: ["ahead"], concurrency: 2, tasks: { slow: async () => new Promise((r) => setTimeout(r, 150)) } });
    const claims: number[] = [];
    w.on("worker:claimed", (e) => e.jobs.length && claims.push(e.jobs.length));
    await queue.enqueueMany(Array.from({ length: 6 }, () => ({ task: "slow", queue: "ahead" })));
    let done = 0;
    const all = new Promise<void>((r) => w.on("job:completed", () => ++done === 6 && r()));
    await w.start();
    await all;
    // 2 slots, 150 ms runs: 2 * 50 / 150 rounds down to nothing claimed ahead
    expect(Math.max(...claims)).toBe(2);

    const quick = db.worker({ queues: ["ahead2"], concurrency: 1, tasks: { q: async () => null, hold: (_p, ctx) => new Promise((_, rej) => ctx.signal.addEventListener("abort", () => rej(ctx.signal.reason))) } });
    await queue.enqueueMany(Array.from({ length: 30 }, () => ({ task: "q", queue: "ahead2" })));
    const hold = await queue.enqueue("hold", {}, { queue: "ahead2", priority: -1 });
    const extra = await queue.enqueueMany(Array.from({ length: 30 }, () => ({ task: "q", queue: "ahead2", priority: -2 })));
    const held = quick.waitFor("job:started", (e) => e.job.id === hold.id, deadline());
    await quick.start();
    await held;
    await quick.stop({ gracefulStopMs: 0 });
    // whatever it had claimed ahead went back unrun, attempt not counted
    const left = await sql.unsafe(`select status, attempts, count(*)::int as n from ${jobs} where queue = 'ahead2' and status <> 'completed' group by 1, 2`);
    expect(left).toEqual([{ status: "queued", attempts: 0, n: 31 }]);
    void extra;
  });

  it("rejects bad options with a typed error", () => {
    for (const bad of [
      { tasks: {} },
      { tasks: { t: 42 } },
      { tasks: { t: async () => 1 }, concurrency: 0 },
      { tasks: { t: async () => 1 }, queues: [] },
      { tasks: { t: async () => 1 }, heartbeatIntervalMs: 1000, staleAfterMs: 500 },
      { tasks: { t: async () => 1 }, heartbeatIntervalMs: 300, staleAfterMs: 599 }, // beats come further apart than the interval
      { tasks: { t: async () => 1 }, timeoutMs: 2 ** 31 }, // a timer past 2^31-1 ms fires at once
      { tasks: { t: async () => 1 }, retention: { completedMs: Number.MAX_SAFE_INTEGER } }, // past what Postgres's timestamps hold
      { tasks: { t: async () => 1 }, pollIntervalMs: "2s" },
      { tasks: { t: async () => 1 }, nonsense: true },
      { tasks: { t: async () => 1 }, pooler: "session" },
      { tasks: { t: async () => 1 }, poolSize: 0 },
      { tasks: { t: async () => 1 }, poolSize: 2.5 },
      { tasks: { t: async () => 1 }, pollIntervalMs: 5000, pollIntervalMaxMs: 1000 },
      { tasks: { t: async () => 1 }, listenConnection: "" },
    ]) {
      const error = (() => {
        try {
          db.worker(bad as never);
        } catch (e) {
          return e;
        }
      })();
      expect(error, JSON.stringify(bad)).toBeInstanceOf(PgPulseError);
      expect((error as PgPulseError).code).toBe("INVALID_INPUT");
    }
  });

  it("listWorkers shows live workers with heartbeat age and running jobs", async () => {
    const started = gate();
    const go = gate();
    const w = db.worker({ queues: ["listw"], concurrency: 3, meta: { host: "test-host" }, tasks: { hold: async () => (started.open(), await go.promise) } });
    await w.start();
    await queue.enqueue("hold", {}, { queue: "listw" });
    await started.promise;
    const me = (await queue.listWorkers()).find((x) => x.id === w.id);
    expect(me).toMatchObject({ queues: ["listw"], tasks: ["hold"], concurrency: 3, running: 1, meta: { host: "test-host" } });
    expect(me!.heartbeatAgeMs).toBeGreaterThanOrEqual(0);
    go.open();
  });

  it("a worker can only be started once", async () => {
    const w = db.worker({ queues: ["once"], tasks: { t: async () => 1 } });
    await w.start();
    await expect(w.start()).rejects.toMatchObject({ code: "INVALID_STATE" });
  });
});

describe("runAvailable", () => {
  it("runs what is runnable now, stops, and reports", async () => {
    await queue.enqueueMany(Array.from({ length: 25 }, (_, i) => ({ task: "sum", queue: "avail", payload: { i } })));
    const later = await queue.enqueue("sum", { i: 99 }, { queue: "avail", delayMs: 60_000 });
    const w = db.worker({ queues: ["avail"], concurrency: 4, tasks: { sum: async (p: { i: number }) => p.i } });
    const summary = await w.runAvailable({ deadlineMs: 20_000 });
    expect(summary).toMatchObject({ claimed: 25, completed: 25, failed: 0, released: 0 });
    expect((await queue.getJob(later.id))!.status).toBe("queued");
    const [{ n }] = (await sql.unsafe(`select count(*)::int as n from "${schema}".workers where id = $1`, [w.id])) as unknown as [{ n: number }];
    expect(n).toBe(0);
  });

  it("stops at maxJobs, and gives back what is still running at the deadline", async () => {
    await queue.enqueueMany(Array.from({ length: 5 }, () => ({ task: "quick", queue: "avail2" })));
    const w = db.worker({ queues: ["avail2"], concurrency: 2, tasks: { quick: async () => 1 } });
    expect(await w.runAvailable({ maxJobs: 3 })).toMatchObject({ claimed: 3, completed: 3 });
    const [{ n }] = (await sql.unsafe(`select count(*)::int as n from ${jobs} where queue = 'avail2' and status = 'queued'`)) as unknown as [{ n: number }];
    expect(n).toBe(2);

    const stuck = await queue.enqueue("stuck", {}, { queue: "avail3" });
    const w2 = db.worker({
      queues: ["avail3"],
      tasks: { stuck: (_p, ctx) => new Promise((_, rej) => ctx.signal.addEventListener("abort", () => rej(ctx.signal.reason))) },
    });
    expect(await w2.runAvailable({ deadlineMs: 100 })).toMatchObject({ claimed: 1, released: 1 });
    expect(await queue.getJob(stuck.id)).toMatchObject({ status: "queued", attempts: 0 });
  });
});

describe("stop", () => {
  it("a second stop with no grace gives the running job back at once, even while the first waits on a claim", async () => {
    const release = gate();
    const started = gate();
    const w = db.worker({ queues: ["stop-twice"], pollIntervalMs: 50, gracefulStopMs: 120_000, tasks: { long: async () => (started.open(), await release.promise) } });
    const job = await queue.enqueue("long", {}, { queue: "stop-twice" });
    await w.start();
    await started.promise;
    // a claim held up by a lock on the table, so the first stop waits on it
    let unlock!: () => void;
    const unlocked = new Promise<void>((r) => (unlock = r));
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => (locked = r));
    const holding = sql.begin(async (tx) => {
      await tx.unsafe(`lock table ${jobs} in access exclusive mode`);
      locked();
      await unlocked;
    });
    await isLocked;
    await untilWaitingOnLock(sql, "%claim%");
    const first = w.stop();
    const second = w.stop({ gracefulStopMs: 0 });
    unlock();
    await holding;
    // (before, the second stop was lost, and this waited out the first one's 120 s grace)
    await second;
    await first;
    expect(await queue.getJob(job.id)).toMatchObject({ status: "queued", attempts: 0 });
    release.open();
  });
});
