import type postgres from "postgres";
import type { Connection, Pooler, SqlHandle } from "../db/connection.ts";
import type { Db } from "../db/db.ts";
import type { RetentionOptions } from "../maintenance/pruner.ts";
import type { PayloadOf, TaskDefinition } from "../shared/task.ts";
import type { EnqueuedJob, Job, JobId, JobStatus } from "../shared/types.ts";
import type { QueueConfig, QueueLimits } from "./queue-config.ts";
import type { Schedule, ScheduleSpec } from "./schedules.ts";
import type { BulkOptions, BulkResult, DeleteJobsOptions, JobFilter, ListJobsFilter } from "./bulk-types.ts";
import type { QueueStats, QueueStatsOptions } from "./stats.ts";
import type { QueueState, QueueSummary, WorkerSummary } from "./status.ts";
import type { Batch, BatchCallbacks, EnqueuedBatch, FlowJob, FlowJobSpec, JobGraph } from "./workflow-types.ts";

export interface QueueOptions {
  /** A postgres:// URL (the queue opens and closes its own pool) or your postgres.js `sql`. */
  connection: Connection;
  /** Schema that holds pgpulse's tables. @default "pgpulse" */
  schema?: string;
  /** Largest payload accepted, in bytes of JSON. @default 1_048_576 */
  maxPayloadBytes?: number;
  /**
   * "transaction" when `connection` goes through a transaction-mode pooler
   * (PgBouncer, Supavisor, a pooled Neon URL): statements are not prepared and
   * nothing relies on session state. @default none: a direct connection
   */
  pooler?: Pooler;
  /** Most connections the queue's own pool opens (not used when you pass your `sql`). @default 10 */
  poolSize?: number;
  /** Middleware around every enqueue call, in order (see `queue.use`). */
  middleware?: QueueMiddleware[];
}

export interface EnqueueOptions {
  /** @default "default" */
  queue?: string;
  /** Higher runs first within a queue. @default 0 */
  priority?: number;
  /** Earliest time to run. Give this or `delayMs`, not both. */
  runAt?: Date | string;
  /** Run no sooner than this many milliseconds from now (database time). */
  delayMs?: number;
  /** @default 10 (or the task definition's) */
  maxAttempts?: number;
  /** Time one attempt may take. @default the task's timeout, else none */
  timeoutMs?: number;
  /** Idempotency key: while a job with this key is queued or running, enqueue returns it instead of a new one. */
  key?: string;
  /** With `key`: a job with the key created within this window, whatever its state, is returned instead. */
  throttleMs?: number;
  /**
   * With `key`: the job runs `debounceMs` after the last enqueue. A queued job with the key
   * takes this payload and options and its run time moves back; a running one is returned as it is.
   */
  debounceMs?: number;
  /** Group (a tenant id, say) for the queue's per-group concurrency limit. */
  group?: string;
  /**
   * String pairs stored with the job and handed to each run (`ctx.job.meta`): a trace
   * context, a request id. At most 32 entries, 4096 characters of JSON.
   */
  meta?: Record<string, string>;
  /** Enqueue inside your transaction: the job commits or rolls back with your writes. */
  tx?: SqlHandle;
}

/** One job for `enqueueMany`. */
export interface JobSpec<P = unknown> extends Omit<EnqueueOptions, "tx"> {
  task: string | TaskDefinition<any, any>;
  payload?: P;
}

/** A line a handler logged with `ctx.log`. */
export interface JobLogLine {
  /** Its place among the job's lines, from 1; the line of level "dropped" counts lines past the caps. */
  seq: number;
  attempt: number;
  at: Date;
  level: "debug" | "info" | "warn" | "error" | "dropped";
  message: string;
  fields: Record<string, unknown> | null;
}

/** What `watch` yields: the job each time it changed, and the log lines added since the last event. */
export interface JobEvent {
  job: Job;
  logs: JobLogLine[];
}

/** One enqueue call as queue middleware sees it (`queue.use`). */
export interface EnqueueCall {
  op: "enqueue" | "enqueueMany" | "enqueueFlow" | "enqueueBatch";
  /**
   * The specs as given (copies: changing one does not change the caller's object),
   * checked after the middleware ran, so middleware may add or change options
   * (`meta`, say). For enqueueFlow they are flow specs; for enqueueBatch, the batch's jobs.
   */
  specs: JobSpec[];
  /** enqueueBatch's callbacks, as given (copies). */
  callbacks?: BatchCallbacks;
  tx: SqlHandle | undefined;
}

/**
 * Wraps each enqueue call (`queue.use(mw)` or the `middleware` option): `next()` checks
 * and writes the jobs and resolves with them (for enqueueBatch, its jobs then its
 * callbacks), whatever inner middleware return. A throw refuses the call; nothing is
 * written unless next() ran. What it returns is not used: the call's result is the jobs.
 */
export type QueueMiddleware = (call: EnqueueCall, next: () => Promise<EnqueuedJob[]>) => Promise<unknown>;

export interface Queue {
  /** Adds one job. Validates everything first: bad input throws a PgPulseError and writes nothing. */
  enqueue<D extends TaskDefinition<any, any>>(
    task: D,
    payload: PayloadOf<D>,
    options?: EnqueueOptions,
  ): Promise<EnqueuedJob>;
  enqueue<P = unknown>(task: string, payload?: P, options?: EnqueueOptions): Promise<EnqueuedJob<P>>;
  /** Adds middleware around every enqueue call, after those added before; returns the queue. */
  use(middleware: QueueMiddleware): Queue;
  /** Adds many jobs in one statement, all or none; results are in input order. */
  enqueueMany(specs: readonly JobSpec[], options?: { tx?: SqlHandle }): Promise<EnqueuedJob[]>;
  /**
   * Adds a graph of jobs in one statement, all or none: each spec names its
   * parents among the others, and waits (status "pending") until they end.
   * Results are in input order. Throws INVALID_GRAPH (a cycle, an unknown or
   * repeated name) or GRAPH_TOO_LARGE and writes nothing. See docs/workflows.md.
   */
  enqueueFlow(specs: readonly FlowJobSpec[], options?: { tx?: SqlHandle }): Promise<FlowJob[]>;
  /** Adds jobs as a batch with callbacks (jobs run when they end); `getBatch` counts them. */
  enqueueBatch(specs: readonly JobSpec[], options?: { callbacks?: BatchCallbacks; tx?: SqlHandle }): Promise<EnqueuedBatch>;
  /** A batch's counts and state, or null when there is no such batch. */
  getBatch(id: JobId, options?: { tx?: SqlHandle }): Promise<Batch | null>;
  /** The jobs connected to a job by dependencies (up to `limit`, default 200) and their edges; null when there is no such job. */
  getGraph(id: JobId, options?: { limit?: number; tx?: SqlHandle }): Promise<JobGraph | null>;
  /** The lines a job's handlers logged, in order across attempts, after `after` (a seq). */
  getJobLogs(id: JobId, options?: { after?: number; limit?: number; tx?: SqlHandle }): Promise<JobLogLine[]>;
  /**
   * Follows a job until it ends: yields it at once, then each time its status,
   * progress or attempt changes or it logs, driven by notifications. Ends after
   * yielding the job in a final status; `signal` stops it sooner. Holds one
   * connection of its own while it runs.
   */
  watch(id: JobId, options?: { signal?: AbortSignal }): AsyncIterableIterator<JobEvent>;
  /** The job, or null when there is no such job; with `logs: true`, also the lines its handlers logged (the first 1,000). */
  getJob<P = unknown, R = unknown>(id: JobId, options: { tx?: SqlHandle; logs: true }): Promise<(Job<P, R> & { logs: JobLogLine[] }) | null>;
  getJob<P = unknown, R = unknown>(id: JobId, options?: { tx?: SqlHandle; logs?: boolean }): Promise<Job<P, R> | null>;
  /**
   * Cancels a job. A queued job is cancelled at once; a running one is asked to
   * stop (its handler's signal aborts) and ends as cancelled. Throws NOT_FOUND,
   * or INVALID_TRANSITION when the job has already finished.
   */
  cancel(id: JobId, options?: { tx?: SqlHandle }): Promise<Job>;
  /**
   * Puts a failed or cancelled job back in the queue to run now, with at least
   * one attempt left; its error history is kept. Throws NOT_FOUND, or
   * INVALID_TRANSITION when the job is queued, running or completed, or when
   * another live job now holds its key.
   */
  retry(id: JobId, options?: { tx?: SqlHandle }): Promise<Job>;
  /** Jobs newest first, filtered; pass `nextCursor` back as `cursor` for the next page. */
  listJobs(filter?: ListJobsFilter, options?: { tx?: SqlHandle }): Promise<{ jobs: Job[]; nextCursor: string | null }>;
  /**
   * Retries every failed or cancelled job the filter matches, as `retry` does one, in
   * batches of `batchSize` rows, each its own transaction. Skips (and counts) jobs whose
   * key a live job holds and jobs a failed parent holds back. See docs/bulk-operations.md.
   */
  retryJobs(filter: JobFilter, options?: BulkOptions): Promise<BulkResult>;
  /** Cancels every pending, queued or running job the filter matches, as `cancel` does one, in batches. */
  cancelJobs(filter: JobFilter, options?: BulkOptions): Promise<BulkResult>;
  /**
   * Deletes every finished job the filter matches, with its log lines and edges, in batches; skips
   * (and counts) a job with a child that has not completed. A filter that names no job throws
   * EMPTY_FILTER unless `all: true` is given.
   */
  deleteJobs(filter: JobFilter, options?: DeleteJobsOptions): Promise<BulkResult>;
  /**
   * Per queue: jobs by state, the oldest waiting job's age, jobs finished in the last
   * minute, and its configuration (paused, limits). Queues with a configuration and no
   * jobs are listed too.
   */
  listQueues(): Promise<QueueSummary[]>;
  /**
   * Per queue: waiting, scheduled and running jobs, the oldest waiting job's age, and its
   * configuration. Reads only the queued and running jobs (through their indexes), so it
   * stays cheap on a table of millions of finished jobs; queues with only finished or
   * pending jobs are not listed unless configured.
   */
  listQueueStates(): Promise<QueueState[]>;
  /** Live workers (by heartbeat row) with their heartbeat age and running jobs. */
  listWorkers(): Promise<WorkerSummary[]>;
  /**
   * Per-queue figures by the minute over the last `minutes` (default 60): attempts
   * completed, failed and retried, starts and their wait (started_at - run_at), and
   * the waiting and running jobs sampled once a minute. Kept by the workers for a day
   * (see docs/operating.md for which figures are exact).
   */
  getQueueStats(options?: QueueStatsOptions): Promise<QueueStats>;
  /** Sets a queue's limits across all workers; limits left out keep their value, `null` removes one. */
  configureQueue(name: string, limits: QueueLimits): Promise<QueueConfig>;
  /** A queue's limits and whether it is paused. */
  getQueueConfig(name: string): Promise<QueueConfig>;
  /** Stops new jobs of the queue from starting; running ones finish. */
  pauseQueue(name: string): Promise<QueueConfig>;
  /** Lets the queue's jobs start again, and wakes the workers. */
  resumeQueue(name: string): Promise<QueueConfig>;
  /** Deletes finished jobs past retention, in small batches; returns how many. */
  prune(retention?: RetentionOptions): Promise<number>;
  /** Adds a recurring job, or replaces the definition of the schedule with that name; a new one first fires at its next tick after the database's time. */
  addSchedule(spec: ScheduleSpec): Promise<Schedule>;
  listSchedules(): Promise<Schedule[]>;
  /** The schedule by that name, or null. */
  getSchedule(name: string): Promise<Schedule | null>;
  /** Removes a schedule; false when there was none by that name. */
  removeSchedule(name: string): Promise<boolean>;
  /**
   * Enqueues a schedule's job now, once, as a tick makes it (its task, payload and
   * options; the queue's middleware does not run, as for ticks), leaving its next tick
   * where it was. The job's key is `schedule:<name>:manual:<time>`, or `key`: while a job
   * with that key is queued or running, it is returned (`deduplicated`) instead.
   * Throws NOT_FOUND when there is no such schedule.
   */
  triggerSchedule(name: string, options?: { key?: string }): Promise<EnqueuedJob>;
  /** Ends the pool if the queue opened it. */
  close(): Promise<void>;
  /** The pool the queue runs on: start your own transactions with it (`queue.sql.begin(...)`) and pass them as `tx`. */
  readonly sql: postgres.Sql;
  /** The database layer under the queue: every statement pgpulse runs on this schema, as named operations. */
  readonly db: Db;
  readonly schema: string;
  /** Largest payload the queue takes, in bytes of JSON (`maxPayloadBytes`), schedules' included. */
  readonly maxPayloadBytes: number;
}
