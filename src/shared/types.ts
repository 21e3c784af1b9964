/**
 * Glossary
 * - job: one unit of work, a row in `jobs`: a task name, a JSON payload and its state.
 * - task: the name a job is enqueued under, and the handler a worker runs for it.
 * - queue: a named lane of jobs; a worker serves a list of queues, earlier ones first.
 * - worker: a process (or part of one) that claims jobs and runs them, `concurrency` at a time.
 * - attempt: one run of a job by a worker; `attempts` counts them, `maxAttempts` caps them.
 * - heartbeat: a worker's periodic refresh of its row in `workers`, its lease on its jobs.
 * - reaper: the loop that declares workers with an old heartbeat dead and puts their jobs back.
 */

/** A job's state. See docs/job-lifecycle.md for the transitions; pending: waits for its parents (docs/workflows.md). */
export type JobStatus = "pending" | "queued" | "running" | "completed" | "failed" | "cancelled";

/** Every status, in lifecycle order. */
export const JOB_STATUSES: readonly JobStatus[] = ["pending", "queued", "running", "completed", "failed", "cancelled"];

/** One failed attempt, as recorded on the job. */
export interface JobError {
  attempt: number;
  /** Database time of the failure, ISO 8601. */
  at: string;
  name: string;
  message: string;
  stack?: string;
  worker?: string | null;
  /**
   * A WorkerLostError for a job its worker had claimed ahead and not started: the first
   * such loss does not count as an attempt.
   */
  unstarted?: boolean;
  /** For ParentFailed and ParentCancelled: the parent whose end ended this job. */
  parent?: string;
}

/** A job as stored. Ids are strings: Postgres bigints do not fit JavaScript numbers. */
export interface Job<Payload = unknown, Result = unknown> {
  id: string;
  queue: string;
  task: string;
  payload: Payload;
  status: JobStatus;
  priority: number;
  runAt: Date;
  attempts: number;
  maxAttempts: number;
  timeoutMs: number | null;
  key: string | null;
  progress: number;
  result: Result | null;
  errors: JobError[];
  workerId: string | null;
  cancelRequestedAt: Date | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  /** The batch the job belongs to (enqueueBatch), or null. */
  batchId: string | null;
  /** String pairs given at enqueue (`meta`), or null. */
  meta: Record<string, string> | null;
}

/** What `enqueue` returns: the job, and whether a live job with the same key was returned instead. */
export type EnqueuedJob<Payload = unknown> = Job<Payload> & { deduplicated: boolean };

/** A job id as accepted by the API: the string form, a number or a bigint. */
export type JobId = string | number | bigint;

export interface JobRow {
  id: string;
  queue: string;
  task: string;
  payload: unknown;
  status: JobStatus;
  priority: number;
  run_at: Date;
  attempts: number;
  max_attempts: number;
  timeout_ms: number | null;
  key: string | null;
  progress: number;
  result: unknown;
  errors: JobError[];
  worker_id: string | null;
  cancel_requested_at: Date | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  batch_id?: string | null;
  meta?: Record<string, string> | null;
}

export function jobFromRow<P = unknown, R = unknown>(row: JobRow): Job<P, R> {
  return {
    id: String(row.id),
    queue: row.queue,
    task: row.task,
    payload: row.payload as P,
    status: row.status,
    priority: row.priority,
    runAt: row.run_at,
    attempts: row.attempts,
    maxAttempts: row.max_attempts,
    timeoutMs: row.timeout_ms,
    key: row.key,
    progress: row.progress,
    result: (row.result ?? null) as R | null,
    errors: row.errors,
    workerId: row.worker_id,
    cancelRequestedAt: row.cancel_requested_at,
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    batchId: row.batch_id == null ? null : String(row.batch_id),
    meta: row.meta ?? null,
  };
}

/** A claimed job as a handler sees it. */
export interface ClaimedJob {
  id: string;
  task: string;
  queue: string;
  payload: unknown;
  priority: number;
  /** This attempt's number, from 1. */
  attempt: number;
  maxAttempts: number;
  timeoutMs: number | null;
  key: string | null;
  createdAt: Date;
  runAt: Date;
  /** String pairs given at enqueue (`meta`), or null. */
  meta: Record<string, string> | null;
}
