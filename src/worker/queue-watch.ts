import type { Db } from "../db/db.ts";
import type { QueueRow } from "../db/queues.ts";

/** A queue without a settings row: no limits, not paused. */
const UNSET: Omit<QueueRow, "name"> = {
  paused: false, concurrency: null, group_concurrency: null, rate_max: null, rate_interval_ms: null,
};

/**
 * Whether a queue's settings went from `was` to `is` by a change that workers
 * are told of (src/db/queues.ts): paused, or a limit set or lowered, or a rate
 * limit's interval lengthened.
 */
export function tightened(was: Omit<QueueRow, "name">, is: Omit<QueueRow, "name">): boolean {
  const tighter = (now: number | null, old: number | null) => now !== null && (old === null || now < old);
  return (is.paused && !was.paused)
    || tighter(is.concurrency, was.concurrency)
    || tighter(is.group_concurrency, was.group_concurrency)
    || tighter(is.rate_max, was.rate_max)
    || (is.rate_interval_ms !== null && was.rate_interval_ms !== null && is.rate_interval_ms > was.rate_interval_ms);
}

export interface QueueWatchOptions {
  db: Pick<Db, "queueSettings">;
  /** The worker's queues. */
  queues: readonly string[];
  /** Gives back the jobs of a queue claimed ahead and not started (Claimer.restrict). */
  restrict(queue: string): void;
  onError(during: string, error: unknown): void;
}

/**
 * How a worker finds the pauses and tighter limits it did not hear of on
 * `pgpulse_control`: a worker without LISTEN at each of its polls, a listening
 * one when its LISTEN is back after an outage. It reads its queues' settings
 * (one statement for all of them), and each queue paused or limited more
 * tightly since the read before is restricted, as a notification would have
 * it. The first read only notes the settings, but for a queue paused
 * already. A read that fails is logged and changes nothing: the next one
 * compares with the last that landed.
 */
export class QueueWatch {
  #seen: Map<string, QueueRow> | null = null;

  constructor(private o: QueueWatchOptions) {}

  /** Reads the settings and restricts the queues changed since; resolves with their names. Never throws. */
  async check(): Promise<string[]> {
    let rows: QueueRow[];
    try {
      rows = await this.o.db.queueSettings(this.o.queues);
    } catch (error) {
      this.o.onError("reading its queues' settings", error);
      return [];
    }
    const now = new Map(rows.map((row) => [row.name, row]));
    const seen = this.#seen;
    this.#seen = now;
    const changed = this.o.queues.filter((queue) => {
      const is = now.get(queue) ?? UNSET;
      return seen === null ? is.paused : tightened(seen.get(queue) ?? UNSET, is);
    });
    for (const queue of changed) this.o.restrict(queue);
    return changed;
  }
}
