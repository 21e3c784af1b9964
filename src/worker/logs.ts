import type { Db } from "../db/db.ts";
import { oneAtATime } from "../shared/timing.ts";
import type { LogLine } from "../db/logs.ts";
import { PgPulseError } from "../shared/errors.ts";
import { toJsonText, unstorable } from "../shared/json.ts";

export type JobLogLevel = "debug" | "info" | "warn" | "error";

/** Longest a job's end waits for its log lines to be written. */
export const END_WAIT_MS = 5000;

interface JobLines {
  attempt: number;
  lines: LogLine[];
  /** Lines this worker wrote or holds for the attempt; past the cap they are only counted. */
  count: number;
  dropped: number;
  /** Calls waiting for this job's lines to be written (its end). */
  after: (() => void)[];
  /** Writes under way that carry lines of the job: its end waits for them too. */
  writing: number;
}

/**
 * Holds the lines handlers log (`ctx.log`) and writes those of every job in
 * one statement every intervalMs, so a chatty handler costs a write per
 * interval, not per line. Lines past a job's cap are counted here, not held:
 * the database keeps at most maxLines lines and maxBytes bytes per job and
 * records how many were dropped. A job's end waits for its lines (`whenWritten`),
 * so whoever follows the job sees its last lines before its final status.
 * Logs are advisory: a write that fails is reported and its lines are lost;
 * the job itself is not affected.
 */
export class LogWriter {
  #jobs = new Map<string, JobLines>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  constructor(
    private db: Pick<Db, "logAppend">,
    private intervalMs: number,
    private maxLines: number,
    private maxBytes: number,
    private onError: (error: unknown) => void,
    private nowMs: () => number = Date.now,
  ) {}

  add(id: string, attempt: number, level: JobLogLevel, message: unknown, fields: unknown): void {
    if (typeof message !== "string") {
      throw new PgPulseError("INVALID_INPUT", `ctx.log takes a message string, got ${typeof message}`);
    }
    if (fields !== undefined && (fields === null || typeof fields !== "object" || Array.isArray(fields))) {
      throw new PgPulseError("INVALID_INPUT", "ctx.log's fields must be a plain object");
    }
    // A line Postgres would refuse is refused here, to its handler, and not in a write
    // that holds the lines of every job of the interval.
    const bad = unstorable(message);
    if (bad) throw new PgPulseError("INVALID_INPUT", `ctx.log's message ${bad}`);
    if (fields !== undefined) toJsonText(fields, "ctx.log fields");
    let job = this.#jobs.get(id);
    if (!job || job.attempt !== attempt) {
      job = { attempt, lines: [], count: 0, dropped: 0, after: [], writing: 0 };
      this.#jobs.set(id, job);
    }
    job.count++;
    if (job.count > this.maxLines) job.dropped++;
    else job.lines.push([id, attempt, this.nowMs(), level, message, (fields as Record<string, unknown> | undefined) ?? null]);
    this.#timer ??= setTimeout(() => void this.flush(), this.intervalMs);
  }

  /**
   * Calls fn once the job's lines held now are written (at once when there are
   * none), or after waitMs if the write has not landed by then: a job's end
   * waits for its lines, not for a database that does not answer.
   */
  whenWritten(id: string, fn: () => void, waitMs = END_WAIT_MS): void {
    const job = this.#jobs.get(id);
    // (lines taken by a write still under way count as held: the next write, one at a time, follows it)
    if (!job || (job.lines.length === 0 && job.dropped === 0 && job.writing === 0)) {
      this.#jobs.delete(id);
      return fn();
    }
    let called = false;
    const once = () => {
      if (called) return;
      called = true;
      clearTimeout(timer);
      fn();
    };
    const timer = setTimeout(once, waitMs);
    job.after.push(once);
    void this.flush();
  }

  /** Writes what is held now; one write at a time. */
  readonly flush = oneAtATime(() => this.#write());

  async #write(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const lines: LogLine[] = [];
    const after: (() => void)[] = [];
    const carried: JobLines[] = [];
    for (const [id, job] of this.#jobs) {
      if (job.lines.length > 0 || job.dropped > 0) {
        job.writing++;
        carried.push(job);
      }
      lines.push(...job.lines);
      // lines counted past the cap travel as one line of level "dropped" that says how many
      if (job.dropped > 0) lines.push([id, job.attempt, this.nowMs(), "dropped", "", { dropped: job.dropped }]);
      job.lines = [];
      job.dropped = 0;
      if (job.after.length > 0) {
        after.push(...job.after);
        this.#jobs.delete(id);
      }
    }
    try {
      if (lines.length > 0) await this.db.logAppend(lines, this.maxLines, this.maxBytes);
    } catch (error) {
      this.onError(error);
    } finally {
      for (const job of carried) job.writing--;
      for (const fn of after) fn();
    }
  }

  /** Forgets a job whose end needs no wait (its lines, if any, go with the next write). */
  forget(id: string): void {
    const job = this.#jobs.get(id);
    if (job && job.lines.length === 0 && job.dropped === 0 && job.after.length === 0 && job.writing === 0) this.#jobs.delete(id);
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const after = [...this.#jobs.values()].flatMap((j) => j.after);
    this.#jobs.clear();
    for (const fn of after) fn();
  }
}
