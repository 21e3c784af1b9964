import type { Db } from "../db/db.ts";
import { oneAtATime } from "../shared/timing.ts";

interface Pending {
  attempt: number;
  /** Latest progress not yet written. */
  percent?: number;
  /** When a job claimed ahead started (ms since the epoch, database clock), until it is written. */
  startedMs?: number;
}

/**
 * Holds the latest progress of each running job and writes all of them in one
 * statement every intervalMs, so a handler may report progress in a tight loop
 * without a write per call. The same write records when jobs claimed ahead of
 * the free slots really started (the claim left their started_at null), within
 * startDelayMs of the start, for those still running by then; a job that ends
 * sooner carries its start in its end's write. Until its start is written, a
 * job whose worker dies looks never started, and the reaper spares its attempt
 * (once per job): the delay is kept short so that this stays rare.
 * Neither column is indexed: with the jobs table's fillfactor these are HOT
 * updates.
 */
export class ProgressWriter {
  #pending = new Map<string, Pending>();
  /** Starts in the write under way: put back if it fails, unless the job ended meanwhile. */
  #writing = new Map<string, Pending>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #startTimer: ReturnType<typeof setTimeout> | undefined;
  constructor(
    private db: Pick<Db, "jobProgressMany">,
    private workerId: string,
    private intervalMs: number,
    private startDelayMs: number,
    private onError: (error: unknown) => void,
  ) {}

  set(id: string, attempt: number, percent: number): void {
    const p = this.#pending.get(id);
    if (p && p.attempt === attempt) p.percent = percent;
    else this.#pending.set(id, { attempt, percent });
    this.#timer ??= setTimeout(() => void this.flush(), this.intervalMs);
  }

  /** A job claimed ahead started (at startedMs, database clock): write it unless the job ends first. */
  started(id: string, attempt: number, startedMs: number): void {
    this.#pending.set(id, { attempt, startedMs });
    this.#startTimer ??= setTimeout(() => void this.flush(), this.startDelayMs);
  }

  /** Drops a job's unwritten progress and start: its final write sets both itself. */
  forget(id: string): void {
    this.#pending.delete(id);
    this.#writing.delete(id);
  }

  /** Writes what is pending now; one write at a time. */
  readonly flush = oneAtATime(() => this.#write());

  async #write(): Promise<void> {
    clearTimeout(this.#timer);
    clearTimeout(this.#startTimer);
    this.#timer = this.#startTimer = undefined;
    if (this.#pending.size === 0) return;
    const rows = [...this.#pending].map(([id, p]) => ({ id, attempt: p.attempt, percent: p.percent ?? null, started_ms: p.startedMs ?? null }));
    for (const [id, p] of this.#pending) if (p.startedMs !== undefined) this.#writing.set(id, p);
    this.#pending.clear();
    try {
      await this.db.jobProgressMany(rows, this.workerId);
    } catch (error) {
      // Progress is advisory: a lost write is superseded by the next one or by the job's end.
      // A start is not: until it is written, the reaper would take the job for one never
      // started should this worker die, and not count the attempt. It goes in the next write.
      for (const [id, p] of this.#writing) {
        if (!this.#pending.has(id)) this.#pending.set(id, { attempt: p.attempt, startedMs: p.startedMs! });
        else this.#pending.get(id)!.startedMs ??= p.startedMs!;
      }
      if (this.#writing.size > 0) this.#startTimer ??= setTimeout(() => void this.flush(), Math.max(this.startDelayMs, 50));
      this.onError(error);
    } finally {
      this.#writing.clear();
    }
  }

  stop(): void {
    clearTimeout(this.#timer);
    clearTimeout(this.#startTimer);
    this.#timer = this.#startTimer = undefined;
    this.#pending.clear();
    this.#writing.clear();
  }
}
