import type { WorkerMiddleware } from "./context.ts";
// The public contract of a worker: its methods, events and summaries.
import type { ClaimedJob } from "./context.ts";
import type { ErrorRecord } from "./finisher.ts";
import type { ReapResult } from "../maintenance/reaper.ts";

/** What a worker reports. Subscribe with `worker.on(event, fn)`. */
export interface WorkerEvents {
  "worker:started": { workerId: string; queues: string[]; concurrency: number; recovered: number };
  "worker:stopped": { workerId: string; stats: WorkerStats };
  "worker:heartbeat": { workerId: string };
  /** The reaper declared this worker dead (a long pause, a partition); it re-registered. */
  "worker:lease-lost": { workerId: string };
  "worker:error": { workerId: string; error: unknown; during: string };
  "worker:claimed": { workerId: string; jobs: ClaimedJob[]; requested: number; reason: string };
  "job:started": { workerId: string; job: ClaimedJob };
  "job:completed": { workerId: string; job: ClaimedJob; result: unknown };
  /** The attempt failed and the job will run again after `delayMs`. */
  "job:retried": { workerId: string; job: ClaimedJob; error: ErrorRecord; delayMs: number };
  /** The job failed for good. */
  "job:failed": { workerId: string; job: ClaimedJob; error: ErrorRecord };
  "job:cancelled": { workerId: string; job: ClaimedJob };
  /** The handler threw JobSnooze: the job runs again after `delayMs`, the attempt not spent. */
  "job:snoozed": { workerId: string; job: ClaimedJob; delayMs: number };
  /** Given back to the queue unrun (graceful stop ran out of time, or the lease was lost). */
  "job:released": { workerId: string; job: ClaimedJob };
  "reaper:reaped": { workerId: string } & ReapResult;
  /** This worker took a schedule's due tick(s) and enqueued their jobs. */
  "schedule:enqueued": { workerId: string; name: string; ticks: Date[] };
  /** Finished jobs past retention were deleted. */
  "jobs:pruned": { workerId: string; deleted: number };
  /** This worker vacuumed the jobs table, autovacuum being off for it. */
  "jobs:vacuumed": { workerId: string };
  "listener:up": { workerId: string };
  "listener:down": { workerId: string; reason: string };
  /** The roster of workers was read: `workers` live workers (this one included) share notifications. */
  "worker:roster": { workerId: string; workers: number };
}

export interface WorkerStats {
  completed: number;
  failed: number;
  retried: number;
  cancelled: number;
  released: number;
  snoozed: number;
}

export interface Worker {
  readonly id: string;
  /** Registers, recovers orphans, starts listening, and begins claiming. */
  start(): Promise<void>;
  /**
   * Stops claiming, waits up to `gracefulStopMs` for running jobs, gives the
   * rest back to the queue (attempt not counted), and removes the worker row.
   */
  stop(options?: { gracefulStopMs?: number }): Promise<void>;
  /**
   * Adds middleware around every run of a handler, after those added before (the
   * first is the outermost). Applies to runs that start after the call. Returns the worker.
   */
  use(middleware: WorkerMiddleware): Worker;
  on<E extends keyof WorkerEvents>(event: E, handler: (payload: WorkerEvents[E]) => void): () => void;
  /** Resolves with the next `event` matching `predicate`; rejects when `signal` aborts. */
  waitFor<E extends keyof WorkerEvents>(
    event: E,
    predicate?: (payload: WorkerEvents[E]) => boolean,
    signal?: AbortSignal,
  ): Promise<WorkerEvents[E]>;
  /**
   * Runs what is runnable now, then stops and returns a summary: for cron-triggered
   * or serverless functions that cannot hold a LISTEN connection. Registers and
   * heartbeats like a long-running worker (and runs one reaper pass), claims up to
   * `concurrency` at a time until nothing is left, `maxJobs` have been claimed, or
   * `deadlineMs` passes; what is still running then is given back to the queue.
   * Use instead of `start()`, not after it.
   */
  runAvailable(options?: RunAvailableOptions): Promise<RunAvailableSummary>;
  /** Claims now, as the periodic sweep does. Resolves with the number of jobs claimed. */
  sweep(): Promise<number>;
  /** Enqueues due schedule ticks now, as the scheduler loop does. */
  runSchedules(): Promise<void>;
  /** Runs one reaper pass now. */
  reap(): Promise<ReapResult>;
  /** Runs one listener health check now; false means the connection was replaced. */
  checkListener(): Promise<boolean>;
  /** Whether the LISTEN connection is up now (false before start, after stop, and while it is being replaced). */
  readonly listening: boolean;
  /** Jobs running now. */
  readonly running: number;
  readonly stats: Readonly<WorkerStats>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface RunAvailableOptions {
  /** Claim at most this many jobs. @default no limit */
  maxJobs?: number;
  /** Stop claiming after this long, and give back what is still running. @default 60000 */
  deadlineMs?: number;
}

export interface RunAvailableSummary extends WorkerStats {
  claimed: number;
  durationMs: number;
}
