import type { Logger } from "../shared/logger.ts";
import type { ClaimedJob } from "../shared/types.ts";

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
  workerId: string;
}
