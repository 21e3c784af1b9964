import type { Clock } from "../shared/clock.ts";
import type { Emitter } from "../shared/events.ts";
import type { Logger } from "../shared/logger.ts";
import type { WorkerEvents } from "../worker/types.ts";

/** What every maintenance service gets from the worker that runs it. */
export interface MaintenanceDeps {
  /** The worker the service runs in, named in its events. */
  workerId: string;
  /** Timers for the service's loop. */
  clock: Clock;
  /** The database clock's stand-in for time comparisons in SQL (tests); null means now(). */
  dbNow: () => Date | null;
  logger: Logger;
  events: Emitter<WorkerEvents>;
  /** A pass that failed; the loop goes on. */
  onError: (error: unknown) => void;
}
