/**
 * pgpulse/testing: run jobs in a test's own process and check what was
 * enqueued, against the real schema, optionally inside a transaction that the
 * test rolls back.
 *
 *   import { expectEnqueued, runJobs, withRollback } from "pgpulse/testing";
 *
 *   await withRollback(queue.sql, async (tx) => {
 *     await signUp({ email: "ann@example.com" }, tx);         // your code, enqueueing with { tx }
 *     await expectEnqueued(queue, { task: "send-welcome", payload: { email: "ann@example.com" } }, { tx });
 *     const ran = await runJobs(queue, { tasks, tx });          // runs it, and what it enqueued
 *     expect(ran.completed).toBe(1);
 *   });                                                         // everything is rolled back
 *
 * runJobs runs the handlers as a worker does (payload schemas, timeouts,
 * retries, results, ctx.log, ctx.parents) but one at a time by default, in
 * order, without LISTEN, heartbeats or a reaper; retries are due at once
 * unless `backoff` says otherwise, and `now` moves the clock for delayed jobs.
 */
import type postgres from "postgres";
import type { SqlHandle } from "../db/connection.ts";
import type { DbOps } from "../db/db.ts";
import type { JobSpec, Queue } from "../producer/types.ts";
import { Emitter } from "../shared/events.ts";
import { PgPulseError } from "../shared/errors.ts";
import { silentLogger } from "../shared/logger.ts";
import { resolveTasks, type TaskMap } from "../shared/task.ts";
import type { Job, JobStatus } from "../shared/types.ts";
import type { BackoffOptions } from "../worker/backoff.ts";
import type { WorkerMiddleware } from "../worker/context.ts";
import { FinishBatcher } from "../worker/finisher.ts";
import { LogWriter } from "../worker/logs.ts";
import { ProgressWriter } from "../worker/progress.ts";
import { JobRunner } from "../worker/runner.ts";
import type { WorkerEvents, WorkerStats } from "../worker/types.ts";

export interface RunJobsOptions {
  tasks: TaskMap;
  /** Run inside your transaction (postgres.js, or a wrapped one). */
  tx?: SqlHandle;
  /** Queues to take jobs from, in order. @default every queue with jobs runnable now */
  queues?: string[];
  /** Jobs run at once. @default 1: one at a time, in claim order */
  concurrency?: number;
  /** Stop after claiming this many (a guard against a job that enqueues itself forever). @default 10000 */
  maxJobs?: number;
  /** Retry delays. @default { baseMs: 0, maxMs: 0 }: a retry is due at once */
  backoff?: BackoffOptions;
  /** The time the claims and ends use, to run delayed jobs. @default the database's clock */
  now?: () => Date;
  /** Middleware around each run, as `worker.use` takes. */
  middleware?: WorkerMiddleware[];
}

export interface RunJobsResult extends WorkerStats {
  /** Every run, in the order they ended: the job, its attempt, and the status it reached. */
  runs: { id: string; task: string; attempt: number; status: JobStatus | null }[];
}

const LOG_MAX_LINES = 1000;
const LOG_MAX_BYTES = 65_536;

/**
 * Runs what is runnable until nothing is (jobs that runs enqueue, children that
 * flows release and retries that fall due included), or `maxJobs` were claimed.
 * Jobs of tasks not in `tasks` are left alone.
 */
export async function runJobs(queue: Queue, options: RunJobsOptions): Promise<RunJobsResult> {
  const db: DbOps = options.tx ? queue.db.withTx(options.tx) : queue.db;
  const tasks = resolveTasks(options.tasks);
  const concurrency = options.concurrency ?? 1;
  const maxJobs = options.maxJobs ?? 10_000;
  if (!Number.isInteger(concurrency) || concurrency < 1 || !Number.isInteger(maxJobs) || maxJobs < 1) {
    throw new PgPulseError("INVALID_INPUT", "concurrency and maxJobs must be whole numbers of at least 1");
  }
  const now = () => options.now?.() ?? null;
  const workerId = `pgpulse-test-${crypto.randomUUID().slice(0, 8)}`;
  const stats: WorkerStats = { completed: 0, failed: 0, retried: 0, cancelled: 0, released: 0, snoozed: 0 };
  const runs: RunJobsResult["runs"] = [];
  let firstError: unknown;
  const failed = (error: unknown) => (firstError ??= error);
  // A test wants a failed write to fail it, not to be retried in the background.
  const finisher: FinishBatcher = new FinishBatcher(db, workerId, 0, now, (error) => {
    failed(error);
    finisher.abandon();
  });
  const progress = new ProgressWriter(db, workerId, 60_000, 60_000, failed);
  const logs = new LogWriter(db, 60_000, LOG_MAX_LINES, LOG_MAX_BYTES, failed);
  let written = 0;
  const taskOf = new Map<string, string>();
  const runner = new JobRunner({
    workerId,
    concurrency,
    tasks,
    logger: silentLogger,
    events: new Emitter<WorkerEvents>(),
    stats,
    finisher,
    progress,
    logs,
    parents: (jobId) => db.flowParents(jobId, 100_000),
    middleware: options.middleware ?? [],
    backoff: options.backoff ?? { baseMs: 0, maxMs: 0 },
    onSlotFree: () => void finisher.flush(),
    onWritten(outcome, result) {
      written++;
      runs.push({ id: outcome.id, task: taskOf.get(outcome.id)!, attempt: outcome.attempt, status: result.status });
    },
  });
  await db.workerRegister({ workerId, queues: options.queues ?? [], tasks: [...tasks.keys()], concurrency, meta: { testing: true }, now: now(), listening: false });
  let claimed = 0;
  try {
    while (claimed < maxJobs) {
      const queues = options.queues ?? (await db.jobRunnableQueues(now()));
      if (queues.length === 0) break;
      const { jobs } = await db.jobClaim({ queues, tasks: [...tasks.keys()], limit: Math.min(concurrency, maxJobs - claimed), ahead: 0, workerId, now: now() });
      if (jobs.length === 0) break;
      claimed += jobs.length;
      const target = written + jobs.length;
      for (const job of jobs) {
        taskOf.set(job.id, job.task);
        runner.run(job);
      }
      // each run ends in the finisher; its write calls onWritten
      while (written < target && !firstError) {
        await finisher.flush();
        if (written < target) await new Promise((resolve) => setTimeout(resolve, 1));
      }
      await logs.flush();
      if (firstError) throw firstError;
    }
  } finally {
    progress.stop();
    logs.stop();
    await db.workerUnregister(workerId, now());
  }
  return { ...stats, runs };
}

export interface JobMatch {
  task?: string;
  queue?: string;
  status?: JobStatus;
  /** Matches a payload that contains this (Postgres's @>): `{ email: "a@b.c" }` matches `{ email: "a@b.c", name: "Ann" }`. */
  payload?: unknown;
}

/** Jobs matching every field given, newest first (at most `limit`, default 100, at most 500): `queue.listJobs`'s filter. */
export async function findJobs(queue: Queue, match: JobMatch, options: { tx?: SqlHandle; limit?: number } = {}): Promise<Job[]> {
  const { jobs } = await queue.listJobs({ ...match, limit: options.limit ?? 100 }, options.tx ? { tx: options.tx } : undefined);
  return jobs;
}

/**
 * Resolves with the jobs matching `match` (newest first, at most 500); throws an Error that
 * says what was there instead when none does, or when `count` is given and
 * that many do not.
 */
export async function expectEnqueued(queue: Queue, match: JobMatch, options: { tx?: SqlHandle; count?: number } = {}): Promise<Job[]> {
  const found = await findJobs(queue, match, { ...(options.tx ? { tx: options.tx } : {}), limit: 500 });
  const ok = options.count === undefined ? found.length > 0 : found.length === options.count;
  if (ok) return found;
  const sameTask = match.task ? await findJobs(queue, { task: match.task }, { ...(options.tx ? { tx: options.tx } : {}), limit: 5 }) : [];
  const seen = sameTask.map((j) => `  #${j.id} ${j.task} (${j.status}, queue ${j.queue}) ${JSON.stringify(j.payload)}`).join("\n");
  throw new Error(
    `expected ${options.count ?? "a"} job${options.count === 1 || options.count === undefined ? "" : "s"} matching ${JSON.stringify(match)}, found ${found.length}` +
      (seen ? `\njobs of task ${match.task}:\n${seen}` : match.task ? `\nno job of task ${match.task} at all` : ""),
  );
}

/**
 * Runs fn in a transaction of `sql` and rolls it back afterwards, whatever fn
 * did: pass the `tx` to your code, to enqueue, expectEnqueued and runJobs.
 * Resolves with what fn returned; a throw from fn rolls back and rethrows.
 */
export async function withRollback<T>(sql: postgres.Sql, fn: (tx: postgres.TransactionSql) => Promise<T>): Promise<T> {
  const rollback = new Error("pgpulse/testing: rolled back");
  let out!: T;
  try {
    await sql.begin(async (tx) => {
      out = await fn(tx);
      throw rollback;
    });
  } catch (error) {
    if (error !== rollback) throw error;
  }
  return out;
}

export type { JobSpec };
