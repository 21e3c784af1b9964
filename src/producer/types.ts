import type postgres from "postgres";
import type { Connection, Pooler, SqlHandle } from "../db/connection.ts";
import type { Db } from "../db/db.ts";
import type { RetentionOptions } from "../maintenance/pruner.ts";
import type { PayloadOf, TaskDefinition } from "../shared/task.ts";
import type { EnqueuedJob, Job, JobId, JobStatus } from "../shared/types.ts";
import type { QueueConfig, QueueLimits } from "./queue-config.ts";
import type { Schedule, ScheduleSpec } from "./schedules.ts";
import type { QueueStats, QueueStatsOptions } from "./stats.ts";
import type { QueueState, QueueSummary, WorkerSummary } from "./status.ts";

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

/**
 * Which jobs to list, retry, cancel or delete: every field given must match.
 * Times are Dates or ISO 8601 text (`2026-11-29`, `2026-11-29T10:00:00Z`; UTC
 * when it has no offset); ranges include their start and exclude their end.
 */
export interface JobFilter {
  status?: JobStatus;
  queue?: string;
  task?: string;
  /** The group given at enqueue (`group`). */
  group?: string;
  /** The key given at enqueue (`key`). */
  key?: string;
  /** Created at or after this time. */
  createdFrom?: Date | string;
  /** Created before this time. */
  createdTo?: Date | string;
  /** Finished (completed, failed or cancelled) at or after this time. */
  finishedFrom?: Date | string;
  /** Finished before this time. */
  finishedTo?: Date | string;
  /** The payload contains this JSON (Postgres's `@>`): `{ user: 42 }` matches `{ user: 42, plan: "pro" }`. */
  payload?: unknown;
}

export interface ListJobsFilter extends JobFilter {
  /** @default 50, at most 500 */
  limit?: number;
  /** The `nextCursor` of the previous page. */
  cursor?: string;
}

/** Options of retryJobs, cancelJobs and deleteJobs. */
export interface BulkOptions {
  /** Rows one batch changes: one short transaction, and its locks held only that long. @default 1000, at most 10,000 */
  batchSize?: number;
  /** Change nothing: count the jobs it would find, and those it would skip and why (`changed` is then what it would change). */
  dryRun?: boolean;
  /** Called after each batch with the counts so far. A throw stops the operation there; the batches before it stay done. */
  onProgress?: (progress: BulkResult) => void;
}

export interface DeleteJobsOptions extends BulkOptions {
  /** Delete every finished job: needed when the filter names none (else EMPTY_FILTER). */
  all?: boolean;
}

/** What retryJobs, cancelJobs and deleteJobs did. `matched` = `changed` + `skipped`. */
export interface BulkResult {
  /**
   * Jobs the filter matched in a state the operation applies to: failed or cancelled
   * (retry); pending, queued or running (cancel); completed, failed or cancelled (delete).
   */
  matched: number;
  /** Jobs retried, cancelled (a running one: asked to stop), or deleted. */
  changed: number;
  /** Matched but left as they were: the sum of `reasons`. */
  skipped: number;
  reasons: {
    /** retry: another live job holds the job's key, or an earlier job of this retry took it. */
    key: number;
    /**
     * retry: a parent stands failed or cancelled with an edge that fails or cancels the job
     * (or its failure ended it): retry the parent, and the job runs after it, as `retry` says.
     */
    parent: number;
    /** delete: a child of the job has not completed (it reads the job's result when it runs, and may be retried), as the pruner keeps it. */
    children: number;
    /** Another transaction held the job every time the operation came to it (three returns). */
    busy: number;
  };
  /** cancel: running jobs asked to stop (counted in `changed`); each ends as cancelled when its handler stops. */
  stopping: number;
  /** Batches run, each its own transaction. */
  batches: number;
  /** True for a dry run: nothing was changed, and the counts say what would be. */
  dryRun: boolean;
}

/** One job for `enqueueMany`. */
export interface JobSpec<P = unknown> extends Omit<EnqueueOptions, "tx"> {
  task: string | TaskDefinition<any, any>;
  payload?: P;
}

/** What a parent's failure or cancellation does to a child: fail it, cancel it, or run it anyway. */
export type ParentFailureMode = "fail" | "cancel" | "run";

/** One job of a flow (`enqueueFlow`): a job spec with a name, and the names of its parents. */
export interface FlowJobSpec<P = unknown> extends Omit<JobSpec<P>, "key" | "throttleMs" | "debounceMs"> {
  /** Names the job within the flow, for its children's `parents`. */
  name: string;
  /** Jobs of the same flow this one waits for; an entry may set the edge's own failure mode. */
  parents?: readonly (string | { name: string; onFailure?: ParentFailureMode })[];
  /** What a parent's failure or cancellation does to this job, for edges that do not say. @default "fail" */
  onParentFailure?: ParentFailureMode;
  key?: never;
  throttleMs?: never;
  debounceMs?: never;
}

/** A job of a flow as enqueued, with its name in the flow. */
export type FlowJob<P = unknown> = EnqueuedJob<P> & { name: string };

/**
 * Jobs that run when a batch's jobs end:
 * - `complete`: once every job has ended, whatever its status;
 * - `success`: once every job has completed (cancelled by the first failure or cancellation);
 * - `failure`: at the first job that fails or is cancelled (cancelled when every job completed).
 */
export interface BatchCallbacks {
  complete?: Omit<JobSpec, "key" | "throttleMs" | "debounceMs">;
  success?: Omit<JobSpec, "key" | "throttleMs" | "debounceMs">;
  failure?: Omit<JobSpec, "key" | "throttleMs" | "debounceMs">;
}

export interface EnqueuedBatch {
  id: string;
  /** The batch's jobs, in input order. */
  jobs: EnqueuedJob[];
  callbacks: { complete?: EnqueuedJob; success?: EnqueuedJob; failure?: EnqueuedJob };
}

export interface Batch {
  id: string;
  size: number;
  createdAt: Date;
  /** The batch's jobs (callbacks not included) by status. */
  counts: Record<JobStatus, number>;
  /** running until every job has ended; then completed when all completed, else failed. */
  state: "running" | "completed" | "failed";
  /** The callbacks' job ids. */
  callbacks: { complete?: string; success?: string; failure?: string };
}

/** A job's place in a graph: the jobs connected to it and the edges among them (`getGraph`). */
export interface JobGraph {
  nodes: { id: string; task: string; queue: string; status: JobStatus; progress: number; startedAt: string | null; finishedAt: string | null }[];
  /** parent id, child id, the edge's failure mode ("failure" for a batch's failure callback), and its state. */
  edges: { parent: string; child: string; mode: string; state: "waiting" | "settled" | "blocked" }[];
  /** More jobs are connected than the limit asked for. */
  truncated: boolean;
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
  /** Adds a recurring job, or replaces the definition of the schedule with that name. */
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
}
