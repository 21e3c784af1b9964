import type { Logger } from "../shared/logger.ts";

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
}

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
  workerId: string;
}
