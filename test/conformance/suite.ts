/**
 * End-to-end conformance cases for pgpulse, runtime-neutral: only the public
 * API, postgres.js, and globals every runtime has (setTimeout, AbortSignal,
 * crypto.randomUUID). Run by test/conformance.test.ts (Node, vitest) and by
 * test/conformance/run.ts (Bun, Deno).
 */
import postgres from "postgres";
import {
  createQueue,
  createWorker,
  JobCancelledError,
  JobReleasedError,
  migrate,
  type JobContext,
  type Worker,
} from "../../src/index.ts";
import { assert, assertEqual, type Case, deadline, later, type Suite, type SuiteContext, until, within } from "./harness.ts";

export const DATABASE_URL_DEFAULT = "postgres://postgres@127.0.0.1:5432/test";

/** Creates a freshly migrated schema of its own (random suffix); teardown drops it. */
export async function setup(options: { url?: string } = {}): Promise<Suite> {
  const url = options.url || DATABASE_URL_DEFAULT;
  const schema = `conformance_${crypto.randomUUID().replaceAll("-", "").slice(0, 10)}`;
  const sql = postgres(url, { onnotice: () => {}, max: 2 });
  try {
    await migrate({ connection: url, schema });
  } catch (error) {
    await sql.end({ timeout: 1 });
    throw error;
  }
  const queue = createQueue({ connection: url, schema });
  const workers = new Set<Worker>();

  const ctx: SuiteContext = {
    url,
    schema,
    sql,
    queue,
    worker(workerOptions) {
      const w = createWorker({ connection: url, schema, logger: "error", ...workerOptions });
      workers.add(w);
      return w;
    },
  };

  return {
    ctx,
    async afterEach() {
      const list = [...workers];
      workers.clear();
      await within(
        Promise.all(list.map((w) => w.stop({ gracefulStopMs: 0 }))),
        10_000,
        `stopping the case's worker(s) ${list.map((w) => w.id).join(", ")}`,
      );
    },
    async teardown() {
      await queue.close();
      try {
        await sql.unsafe(`drop schema if exists "${schema}" cascade`);
      } finally {
        await sql.end({ timeout: 5 });
      }
    },
  };
}

/** Resolves never; rejects with the signal's reason once it aborts. A handler that only stops when told to. */
function untilAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) return reject(signal.reason);
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}

/** A promise with its resolve exposed. */
function gate<T>() {
  let open!: (value: T) => void;
  const promise = new Promise<T>((r) => (open = r));
  return { promise, open };
}

const sameJob = (id: string) => (e: { job: { id: string } }) => e.job.id === id;

export const cases: Case[] = [
  {
    name: "enqueue and process: a job completes with its result and progress 100",
    async run({ queue, worker }) {
      const w = worker({
        queues: ["c-process"],
        tasks: {
          echo: async (payload: { n: number }, ctx: JobContext) => {
            ctx.progress(40);
            return { doubled: payload.n * 2, attempt: ctx.job.attempt };
          },
        },
      });
      await w.start();
      const job = await queue.enqueue("echo", { n: 21 }, { queue: "c-process" });
      assertEqual(job.status, "queued", "status right after enqueue");
      assertEqual(job.deduplicated, false, "deduplicated");

      const done = await w.waitFor("job:completed", sameJob(job.id), deadline());
      assertEqual(done.result, { doubled: 42, attempt: 1 }, "job:completed result");

      const stored = await queue.getJob(job.id);
      assert(stored, `job ${job.id} not found after completing`);
      assertEqual(stored.status, "completed", "stored status");
      assertEqual(stored.result, { doubled: 42, attempt: 1 }, "stored result");
      assertEqual(stored.progress, 100, "stored progress");
      assertEqual(stored.attempts, 1, "stored attempts");
      assertEqual(stored.errors, [], "stored errors");
      assertEqual(stored.workerId, null, "stored workerId");
      assert(stored.finishedAt instanceof Date, `finishedAt should be a Date, got ${String(stored.finishedAt)}`);
      assertEqual(w.stats.completed, 1, "worker stats.completed");
    },
  },

  {
    name: "workflow: a fan-out and a fan-in run in order, the child reads its parents, logs are kept, and watch() follows it to the end",
    async run({ queue, worker }) {
      const w = worker({
        queues: ["c-flow"],
        logIntervalMs: 5,
        tasks: {
          part: async (p: { n: number }, ctx: JobContext) => {
            ctx.log(`part ${p.n}`);
            return p.n;
          },
          sum: async (_p: unknown, ctx: JobContext) => {
            const parents = await ctx.parents();
            ctx.log.info("summing", { parents: parents.length });
            return parents.reduce((total, parent) => total + (parent.result as number), 0);
          },
        },
      });
      const jobs = await queue.enqueueFlow([
        { name: "first", task: "part", queue: "c-flow", payload: { n: 1 } },
        { name: "a", task: "part", queue: "c-flow", payload: { n: 10 }, parents: ["first"] },
        { name: "b", task: "part", queue: "c-flow", payload: { n: 100 }, parents: ["first"] },
        { name: "sum", task: "sum", queue: "c-flow", parents: ["a", "b"] },
      ]);
      assertEqual(jobs.map((j) => j.status), ["queued", "pending", "pending", "pending"], "statuses at enqueue");
      const statuses: string[] = [];
      const followed = (async () => {
        for await (const { job } of queue.watch(jobs[3]!.id, { signal: deadline() })) statuses.push(job.status);
      })();
      await w.start();
      await followed;
      assertEqual(statuses[0], "pending", "watch's first event");
      assertEqual(statuses.at(-1), "completed", "watch's last event");
      const sum = await queue.getJob(jobs[3]!.id, { logs: true });
      assert(sum, "the fan-in job is gone");
      assertEqual(sum.result, 110, "the fan-in job's result");
      assertEqual(sum.logs.map((l) => [l.message, l.fields]), [["summing", { parents: 2 }]], "the fan-in job's logs");
      for (const child of jobs.slice(1, 3)) {
        const stored = await queue.getJob(child.id);
        const root = await queue.getJob(jobs[0]!.id);
        assert(stored && root && stored.startedAt! >= root.finishedAt!, `job ${child.id} started before its parent ended`);
      }
    },
  },

  {
    name: "retry: fails twice, completes on attempt 3 with 2 errors recorded",
    async run({ queue, worker }) {
      const calls: number[] = [];
      const w = worker({
        queues: ["c-retry"],
        backoff: { baseMs: 20, maxMs: 100 },
        tasks: {
          flaky: async (_payload: unknown, ctx: JobContext) => {
            calls.push(ctx.job.attempt);
            if (ctx.job.attempt < 3) throw new Error(`boom on attempt ${ctx.job.attempt}`);
            return { ok: true };
          },
        },
      });
      await w.start();
      const job = await queue.enqueue("flaky", {}, { queue: "c-retry", maxAttempts: 5 });

      await w.waitFor("job:completed", sameJob(job.id), deadline());
      assertEqual(calls, [1, 2, 3], "attempts the handler saw");

      const stored = await queue.getJob(job.id);
      assert(stored, `job ${job.id} not found`);
      assertEqual(stored.status, "completed", "status");
      assertEqual(stored.attempts, 3, "attempts");
      assertEqual(stored.result, { ok: true }, "result");
      assertEqual(
        stored.errors.map((e) => ({ attempt: e.attempt, name: e.name, message: e.message, worker: e.worker })),
        [
          { attempt: 1, name: "Error", message: "boom on attempt 1", worker: w.id },
          { attempt: 2, name: "Error", message: "boom on attempt 2", worker: w.id },
        ],
        "recorded errors",
      );
      assert(stored.errors.every((e) => typeof e.at === "string" && e.at.length > 0), "every error should carry its time");
      assertEqual(w.stats.retried, 2, "worker stats.retried");
    },
  },

  {
    name: "cancel: a queued job stays cancelled; a running one gets its signal aborted and ends cancelled",
    async run({ queue, worker }) {
      // Queued: cancelled before any worker serves the queue, then never run.
      const queued = await queue.enqueue("wait", {}, { queue: "c-cancel" });
      const afterCancel = await queue.cancel(queued.id);
      assertEqual(afterCancel.status, "cancelled", "status returned by cancel of a queued job");

      const ran: string[] = [];
      const started = gate<AbortSignal>();
      const w = worker({
        queues: ["c-cancel"],
        tasks: {
          wait: async (_payload: unknown, ctx: JobContext) => {
            ran.push(ctx.job.id);
            started.open(ctx.signal);
            await untilAborted(ctx.signal);
          },
        },
      });
      await w.start();
      await w.sweep(); // an explicit claim pass: the cancelled job must not be taken
      const stillCancelled = await queue.getJob(queued.id);
      assert(stillCancelled, `job ${queued.id} not found`);
      assertEqual(stillCancelled.status, "cancelled", "queued job's status after a claim pass");
      assertEqual(stillCancelled.attempts, 0, "queued job's attempts");
      assert(stillCancelled.finishedAt instanceof Date, "a cancelled job should have finishedAt");

      // Running: cancel reaches the handler through its signal.
      const running = await queue.enqueue("wait", {}, { queue: "c-cancel" });
      const signal = await within(started.promise, 10_000, "the running job's handler starting");
      assertEqual(ran, [running.id], "jobs the handler ran (the cancelled queued one must not be among them)");
      const cancelledEvent = later(w.waitFor("job:cancelled", sameJob(running.id), deadline()));
      const requested = await queue.cancel(running.id);
      assertEqual(requested.status, "running", "status returned by cancel of a running job");
      assert(requested.cancelRequestedAt instanceof Date, "cancel of a running job should set cancelRequestedAt");
      await cancelledEvent;
      assert(signal.aborted, "the handler's signal should be aborted");
      assert(
        signal.reason instanceof JobCancelledError,
        `signal reason should be a JobCancelledError, got ${String(signal.reason?.name ?? signal.reason)}`,
      );

      const stored = await queue.getJob(running.id);
      assert(stored, `job ${running.id} not found`);
      assertEqual(stored.status, "cancelled", "running job's final status");
      assertEqual(stored.workerId, null, "running job's workerId");
      assertEqual(stored.attempts, 1, "running job's attempts");
      assertEqual(w.stats.cancelled, 1, "worker stats.cancelled");
    },
  },

  {
    name: "graceful stop: an in-flight job goes back to queued with attempts 0",
    async run({ queue, worker }) {
      const started = gate<AbortSignal>();
      const w = worker({
        queues: ["c-stop"],
        tasks: {
          hold: async (_payload: unknown, ctx: JobContext) => {
            started.open(ctx.signal);
            await untilAborted(ctx.signal);
          },
        },
      });
      await w.start();
      const job = await queue.enqueue("hold", {}, { queue: "c-stop" });
      const signal = await within(started.promise, 10_000, "the job's handler starting");
      const running = await queue.getJob(job.id);
      assertEqual(running?.status, "running", "status while the handler runs");
      assertEqual(running?.attempts, 1, "attempts while the handler runs");

      await within(w.stop({ gracefulStopMs: 50 }), 10_000, "worker.stop({ gracefulStopMs: 50 })");
      assert(signal.aborted, "the handler's signal should be aborted by the stop");
      assert(
        signal.reason instanceof JobReleasedError,
        `signal reason should be a JobReleasedError, got ${String(signal.reason?.name ?? signal.reason)}`,
      );

      const stored = await queue.getJob(job.id);
      assert(stored, `job ${job.id} not found`);
      assertEqual(stored.status, "queued", "status after stop");
      assertEqual(stored.attempts, 0, "attempts after stop");
      assertEqual(stored.workerId, null, "workerId after stop");
      assertEqual(stored.startedAt, null, "startedAt after stop");
      assertEqual(stored.errors, [], "errors after stop (a release is not a failure)");
      assertEqual(w.stats.released, 1, "worker stats.released");
      assertEqual(w.running, 0, "jobs still running on the stopped worker");
    },
  },

  {
    name: "kill and reclaim: a worker whose connection dies loses its job to another worker's reaper",
    async run({ url, queue, worker }) {
      const timings = { heartbeatIntervalMs: 100, staleAfterMs: 500, reaperIntervalMs: 100 };
      const sqlA = postgres(url, { onnotice: () => {}, max: 2 });
      let sqlAEnded = false;
      const endA = async () => {
        if (sqlAEnded) return;
        sqlAEnded = true;
        await sqlA.end({ timeout: 0 });
      };
      try {
        const startedOnA = gate<AbortSignal>();
        const a = worker({
          connection: sqlA,
          logger: "silent", // after the kill, everything A tries to write fails, and it says so
          queues: ["c-reclaim"],
          concurrency: 1,
          ...timings,
          tasks: {
            work: async (_payload: unknown, ctx: JobContext) => {
              startedOnA.open(ctx.signal);
              await untilAborted(ctx.signal);
            },
          },
        });
        await a.start();
        const job = await queue.enqueue("work", { n: 1 }, { queue: "c-reclaim", maxAttempts: 3 });
        await within(startedOnA.promise, 10_000, "worker A starting the job");
        const onA = await queue.getJob(job.id);
        assertEqual(onA?.workerId, a.id, "the job's worker before the kill");

        // "Kill" A: its pool is gone, so it can neither heartbeat nor write the job's end.
        await endA();

        const b = worker({
          queues: ["c-reclaim"],
          ...timings,
          tasks: { work: async (_payload: unknown, ctx: JobContext) => ({ by: ctx.workerId, attempt: ctx.job.attempt }) },
        });
        const reaped = later(b.waitFor("reaper:reaped", (e) => e.workers.includes(a.id), deadline()));
        const completed = later(b.waitFor("job:completed", sameJob(job.id), deadline()));
        await b.start();
        const reap = await reaped;
        assertEqual(reap.jobs, [{ id: job.id, status: "queued" }], "jobs the reaper took back");
        const done = await completed;
        assertEqual(done.result, { by: b.id, attempt: 2 }, "result from worker B");

        const stored = await queue.getJob(job.id);
        assert(stored, `job ${job.id} not found`);
        assertEqual(stored.status, "completed", "status");
        assertEqual(stored.attempts, 2, "attempts");
        assertEqual(stored.result, { by: b.id, attempt: 2 }, "stored result");
        assertEqual(
          stored.errors.map((e) => ({ attempt: e.attempt, name: e.name, worker: e.worker })),
          [{ attempt: 1, name: "WorkerLostError", worker: a.id }],
          "recorded errors",
        );

        // A's stop must end although every write it tries fails; it must not clobber B's result.
        await within(a.stop({ gracefulStopMs: 0 }), 10_000, "stopping the killed worker A");
        const after = await queue.getJob(job.id);
        assertEqual(after?.status, "completed", "status after A stopped");
        assertEqual(after?.attempts, 2, "attempts after A stopped");
      } finally {
        await endA();
      }
    },
  },
];
