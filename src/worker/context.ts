import type { Logger } from "../shared/logger.ts";
import type { ClaimedJob, JobStatus } from "../shared/types.ts";

export type { ClaimedJob } from "../shared/types.ts";

/** What a handler gets besides its payload. */
export interface JobContext {
  job: ClaimedJob;
  /**
   * Aborts when the attempt must stop: its timeout passed (reason JobTimeoutError),
   * it was cancelled (JobCancelledError), or the worker is giving it back
   * (JobReleasedError). Pass it to fetch and friends.
   */
  signal: AbortSignal;
  /** Records progress, 0 to 100. Cheap to call often: writes are batched and throttled. */
  progress(percent: number): void;
  logger: Logger;
  /**
   * Stores a line with the job (read back through getJob's logs, the API, the
   * CLI and the dashboard), batched like progress; `ctx.log.warn(...)` and
   * friends set the level (default info). A job keeps at most the worker's
   * `logMaxLines` lines and `logMaxBytes` bytes; the rest are counted.
   */
  log: JobLog;
  /**
   * The jobs this one waited for in a flow or batch (none otherwise), in the
   * order they were enqueued, with their status and result. Read when called.
   */
  parents(): Promise<ParentJob[]>;
  workerId: string;
}

/**
 * Wraps each run of a handler (`worker.use(mw)` or the `middleware` option): gets
 * the run's context and `next`, which runs the rest of the chain and the handler
 * and resolves with its result. What it throws or returns counts as the
 * handler's: a throw is retried by the same rules, a value is the result.
 */
export type WorkerMiddleware = (ctx: JobContext, next: () => Promise<unknown>) => Promise<unknown>;

export interface JobLog {
  (message: string, fields?: Record<string, unknown>): void;
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export interface ParentJob {
  id: string;
  task: string;
  status: JobStatus;
  result: unknown;
}
