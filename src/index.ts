/**
 * pgpulse: a job queue that keeps its jobs in Postgres.
 * Everything exported here is runtime-free: it runs on Node, Bun, Deno, and
 * (the queue) in edge runtimes.
 */
export { createQueue, MAX_PAYLOAD_BYTES_DEFAULT } from "./producer/queue.ts";
export type { EnqueueCall, EnqueueOptions, JobEvent, JobLogLine, JobSpec, Queue, QueueMiddleware, QueueOptions } from "./producer/types.ts";
export type { BulkOptions, BulkResult, DeleteJobsOptions, JobFilter, ListJobsFilter } from "./producer/bulk-types.ts";
export type { Batch, BatchCallbacks, EnqueuedBatch, FlowJob, FlowJobSpec, JobGraph, ParentFailureMode } from "./producer/workflow-types.ts";
export { BULK_BATCH_SIZE_DEFAULT } from "./producer/bulk.ts";
export { JOB_FILTER_FIELDS } from "./producer/job-filter.ts";
export { MAX_FLOW_EDGES, MAX_FLOW_JOBS } from "./producer/flows.ts";
export { JOB_CHANNEL } from "./producer/watch.ts";
export { createWorker } from "./worker/worker.ts";
export { errorRecord } from "./shared/error-record.ts";
export type { RunAvailableOptions, RunAvailableSummary, Worker, WorkerEvents, WorkerOptions, WorkerStats } from "./worker/worker.ts";
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
} from "./worker/options.ts";
export { migrate, SCHEMA_VERSION } from "./schema/migrate.ts";
export type { MigrateOptions, MigrateResult } from "./schema/migrate.ts";
export { migrationSql, type MigrationSqlOptions } from "./schema/migrate.ts";
export { defineTask } from "./shared/task.ts";
export type { PayloadOf, TaskDefinition, TaskHandler, TaskMap, TaskSettings } from "./shared/task.ts";
export type { ClaimedJob, JobContext, JobLog, ParentJob, WorkerMiddleware } from "./worker/context.ts";
export { backoffDelay, BACKOFF_BASE_MS_DEFAULT, BACKOFF_MAX_MS_DEFAULT } from "./worker/backoff.ts";
export type { BackoffOptions } from "./worker/backoff.ts";
export { JobCancelledError, JobReleasedError, JobSnooze, JobTimeoutError, PermanentError, PgPulseError } from "./shared/errors.ts";
export type { ErrorCode, InputIssue } from "./shared/errors.ts";
export { consoleLogger, silentLogger } from "./shared/logger.ts";
export type { Logger, LogLevel } from "./shared/logger.ts";
export { SCHEMA_DEFAULT } from "./db/connection.ts";
export type { Connection, SqlHandle } from "./db/connection.ts";
export { CONTROL_CHANNEL, ENQUEUED_CHANNEL } from "./db/channels.ts";
export type { ReapResult } from "./maintenance/reaper.ts";
export type { ErrorRecord } from "./worker/finisher.ts";
export type { QueueState, QueueSummary, WorkerSummary } from "./producer/status.ts";
export type { QueueConfig, QueueLimits } from "./producer/queue-config.ts";
export { RETENTION_COMPLETED_MS_DEFAULT, RETENTION_FAILED_MS_DEFAULT } from "./maintenance/pruner.ts";
export type { RetentionOptions } from "./maintenance/pruner.ts";
export type { Schedule, ScheduleSpec } from "./producer/schedules.ts";
export { STATS_MINUTES_MAX } from "./producer/stats.ts";
export type { QueueStats, QueueStatsOptions, QueueStatsPoint } from "./producer/stats.ts";
export { JOB_STATUSES } from "./shared/types.ts";
export type { EnqueuedJob, Job, JobError, JobId, JobStatus } from "./shared/types.ts";
