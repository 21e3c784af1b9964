import type { Timer } from "../shared/clock.ts";
import type { ClaimedJob } from "../shared/types.ts";

/** A job running here: one attempt, until it settles. */
export interface Active {
  job: ClaimedJob;
  /** Made when the handler first reads ctx.signal: most never do, and one costs microseconds. */
  controller?: AbortController;
  /** Why the attempt was stopped, for a signal read only afterwards. */
  abortedWith?: unknown;
  timer?: Timer;
  settled: boolean;
  startedAt: number;
  /** Claimed ahead: the start on the database's clock (ms since the epoch), which this worker must write. */
  startMs?: number;
}

export function abort(entry: Active, reason: unknown): void {
  if (entry.abortedWith !== undefined) return;
  entry.abortedWith = reason;
  entry.controller?.abort(reason);
}

export function signalOf(entry: Active): AbortSignal {
  if (!entry.controller) {
    entry.controller = new AbortController();
    if (entry.abortedWith !== undefined) entry.controller.abort(entry.abortedWith);
  }
  return entry.controller.signal;
}
