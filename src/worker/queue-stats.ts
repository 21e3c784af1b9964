import type { Db } from "../db/db.ts";
import { STATS_RETENTION_MS, type StatsCountRow } from "../db/stats.ts";
import { PeriodicService } from "../shared/service.ts";
import type { MaintenanceDeps } from "../maintenance/deps.ts";

/** Seconds of counts kept while writes fail; past this the oldest are dropped. */
export const STATS_BUCKETS_MAX = 10_000;

interface Bucket extends StatsCountRow {
  /** The second of the monotonic clock the bucket covers. */
  second: number;
}

/**
 * Counts this worker's attempts per queue and second, for the per-minute
 * figures (sql/000007): ends as the database took them (completed, failed,
 * retried) and starts with their wait (started_at - run_at). Nothing here
 * touches the database; QueueStatsWriter writes the counts every few seconds.
 *
 * Times are the monotonic clock's (performance.now()); the write turns them
 * into the database's clock, so a worker whose wall clock is off still puts
 * its counts in the right minute and measures waits in the database's time.
 */
export class QueueStatsRecorder {
  #buckets = new Map<string, Bucket>();
  /** The queue's bucket of the current second, so that a busy worker looks up a map once per job. */
  #current = new Map<string, Bucket>();
  #second = -1;
  #dropped = 0;
  /** Wall time minus monotonic time, fixed at creation: any constant would do (see `take`). */
  readonly #offset: number;

  constructor(
    private monotonic: () => number = () => performance.now(),
    wallNow: () => number = () => Date.now(),
  ) {
    this.#offset = wallNow() - this.monotonic();
  }

  /** Buckets held, across queues and seconds. */
  get size(): number {
    return this.#buckets.size;
  }

  /** Buckets dropped because writes kept failing. */
  get dropped(): number {
    return this.#dropped;
  }

  #bucket(queue: string, at: number): Bucket {
    const second = Math.floor(at / 1000);
    if (second !== this.#second) {
      this.#current.clear();
      this.#second = second;
    }
    let b = this.#current.get(queue);
    if (b) return b;
    const key = `${second}\u0000${queue}`;
    b = this.#buckets.get(key);
    if (!b) {
      if (this.#buckets.size >= STATS_BUCKETS_MAX) this.#dropOldest();
      b = { queue, second, age_ms: 0, completed: 0, failed: 0, retried: 0, started: 0, d_sum: 0, d_min: 0 };
      this.#buckets.set(key, b);
    }
    this.#current.set(queue, b);
    return b;
  }

  #dropOldest(): void {
    const [key] = this.#buckets.keys();
    if (key === undefined) return;
    this.#buckets.delete(key);
    this.#dropped++;
  }

  /** An attempt started now; `runAt` is the job's run time (database clock). */
  started(queue: string, runAt: Date): void {
    const at = this.monotonic();
    const b = this.#bucket(queue, at);
    // run_at minus the start, both in wall-clock terms of this worker: the write corrects for its clock
    const d = runAt.getTime() - (at + this.#offset);
    b.d_min = b.started === 0 ? d : Math.min(b.d_min, d);
    b.d_sum += d;
    b.started++;
  }

  /** The database took an attempt's end. */
  ended(queue: string, how: "completed" | "failed" | "retried"): void {
    this.#bucket(queue, this.monotonic())[how]++;
  }

  /**
   * Hands over every bucket for writing, with its age, and `refMs`: this
   * moment in the same wall-clock terms as the waits, which the write sets
   * against the database's now().
   */
  take(): { rows: StatsCountRow[]; refMs: number; at: number } {
    const at = this.monotonic();
    const rows = [...this.#buckets.values()].map(({ second, ...row }) => ({ ...row, age_ms: Math.max(0, at - second * 1000) }));
    this.#buckets.clear();
    this.#current.clear();
    this.#second = -1;
    return { rows, refMs: at + this.#offset, at };
  }

  /** Puts back what a failed write took (`at` from `take`), to go with the next. */
  restore(taken: { rows: StatsCountRow[]; at: number }): void {
    for (const row of taken.rows) {
      const second = Math.round((taken.at - row.age_ms) / 1000);
      const key = `${second}\u0000${row.queue}`;
      const b = this.#buckets.get(key);
      if (!b) {
        if (this.#buckets.size >= STATS_BUCKETS_MAX) {
          this.#dropped++;
          continue;
        }
        this.#buckets.set(key, { ...row, second });
        continue;
      }
      b.d_min = b.started === 0 ? row.d_min : row.started === 0 ? b.d_min : Math.min(b.d_min, row.d_min);
      b.completed += row.completed;
      b.failed += row.failed;
      b.retried += row.retried;
      b.started += row.started;
      b.d_sum += row.d_sum;
    }
  }
}

export interface QueueStatsWriterOptions extends MaintenanceDeps {
  db: Pick<Db, "statsRecord" | "statsSample">;
  recorder: QueueStatsRecorder;
  intervalMs: number;
}

/**
 * Writes the recorder's counts every intervalMs, and once a minute offers to
 * sample the waiting and running jobs of every queue: the first worker to ask
 * in a minute does it (and deletes figures past a day), the others find it done.
 * A schema without the tables (not migrated to version 7) turns it off with a warning.
 */
export class QueueStatsWriter extends PeriodicService<{ rows: number; sampled: Date | null }> {
  #lastMinute = -1;
  #off = false;

  constructor(private o: QueueStatsWriterOptions) {
    super(o);
  }

  /** One pass: the count rows written, and the minute sampled if this worker sampled one. */
  async runOnce(): Promise<{ rows: number; sampled: Date | null }> {
    const rows = await this.flush();
    let sampled: Date | null = null;
    const { o } = this;
    const minute = Math.floor((o.dbNow()?.getTime() ?? o.clock.now()) / 60_000);
    if (!this.#off && minute !== this.#lastMinute) {
      // (a sample that fails throws before the minute is marked: the next pass tries again)
      sampled = (await this.#guard(() => o.db.statsSample(o.workerId, STATS_RETENTION_MS, o.dbNow()))) ?? null;
      this.#lastMinute = minute;
    }
    return { rows, sampled };
  }

  /** Writes the counts held now; resolves with how many rows. A failed write keeps them for the next. */
  async flush(): Promise<number> {
    const { o } = this;
    if (this.#off) {
      o.recorder.take();
      return 0;
    }
    const taken = o.recorder.take();
    if (taken.rows.length === 0) return 0;
    try {
      await this.#guard(() => o.db.statsRecord(taken.rows, taken.refMs, o.dbNow()));
    } catch (error) {
      o.recorder.restore(taken);
      throw error;
    }
    return this.#off ? 0 : taken.rows.length;
  }

  async #guard<T>(write: () => Promise<T>): Promise<T | undefined> {
    try {
      return await write();
    } catch (error) {
      if ((error as { code?: unknown }).code !== "42P01") throw error;
      this.#off = true;
      this.o.logger.warn("the schema has no queue_stats table (run pgpulse migrate): per-minute figures are not recorded");
      return undefined;
    }
  }
}
