/**
 * pgpulse: a job queue that keeps its jobs in Postgres.
 * Everything exported here is runtime-free: it runs on Node, Bun, Deno, and
 * (the queue) in edge runtimes.
 */
export { createQueue, MAX_PAYLOAD_BYTES_DEFAULT } from "./queue.ts";
export type { EnqueueOptions, JobSpec, ListJobsFilter, Queue, QueueOptions } from "./queue.ts";
export { createWorker } from "./worker.ts";
export { errorRecord } from "./error-record.ts";
export type { RunAvailableOptions, RunAvailableSummary, Worker, WorkerEvents, WorkerOptions, WorkerStats } from "./worker.ts";
export {
  CONCURRENCY_DEFAULT,
  FINISH_BATCH_MS_DEFAULT,
  GRACEFUL_STOP_MS_DEFAULT,
  HEARTBEAT_INTERVAL_MS_DEFAULT,
  LISTENER_HEALTH_INTERVAL_MS_DEFAULT,
  LISTENER_HEALTH_TIMEOUT_MS_DEFAULT,
  POLL_INTERVAL_MS_DEFAULT,
  PROGRESS_INTERVAL_MS_DEFAULT,
  REAPER_INTERVAL_MS_DEFAULT,
  STALE_AFTER_MS_DEFAULT,
  SCHEDULE_INTERVAL_MS_DEFAULT,
  PRUNE_INTERVAL_MS_DEFAULT,
} from "./worker-options.ts";
export { migrate, SCHEMA_VERSION } from "./migrate.ts";
export type { MigrateOptions, MigrateResult } from "./migrate.ts";
export { defineTask } from "./task.ts";
export type { PayloadOf, TaskDefinition, TaskHandler, TaskMap, TaskSettings } from "./task.ts";
export type { ClaimedJob, JobContext } from "./context.ts";
export { backoffDelay, BACKOFF_BASE_MS_DEFAULT, BACKOFF_MAX_MS_DEFAULT } from "./backoff.ts";
export type { BackoffOptions } from "./backoff.ts";
export { JobCancelledError, JobReleasedError, JobSnooze, JobTimeoutError, PermanentError, PgPulseError } from "./errors.ts";
export type { ErrorCode, InputIssue } from "./errors.ts";
export { consoleLogger, silentLogger } from "./logger.ts";
export type { Logger, LogLevel } from "./logger.ts";
export { SCHEMA_DEFAULT } from "./connection.ts";
export type { Connection, SqlHandle } from "./connection.ts";
export { CONTROL_CHANNEL, ENQUEUED_CHANNEL } from "./listener.ts";
export type { ReapResult } from "./reaper.ts";
export type { ErrorRecord } from "./finish.ts";
export type { QueueSummary, WorkerSummary } from "./status.ts";
export type { QueueConfig, QueueLimits } from "./queue-config.ts";
export { RETENTION_COMPLETED_MS_DEFAULT, RETENTION_FAILED_MS_DEFAULT } from "./prune.ts";
export type { RetentionOptions } from "./prune.ts";
export type { Schedule, ScheduleSpec } from "./schedules.ts";
export type { EnqueuedJob, Job, JobError, JobId, JobStatus } from "./types.ts";
