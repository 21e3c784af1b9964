import type { Db } from "../db/db.ts";
import type { FinishRow } from "../db/finish.ts";
import { isStopped } from "../db/statements.ts";
import { type Clock, systemClock, type Timer } from "../shared/clock.ts";
import type { JobStatus } from "../shared/types.ts";

/** How an attempt ended, as the worker reports it. */
export type Outcome = (
  | { kind: "completed"; id: string; attempt: number; result: unknown }
  | { kind: "retry"; id: string; attempt: number; error: ErrorRecord; delayMs: number }
  | { kind: "failed"; id: string; attempt: number; error: ErrorRecord }
  | { kind: "cancelled"; id: string; attempt: number; error: ErrorRecord }
  /** Given back unrun (graceful stop): back to queued, the attempt not counted. */
  | { kind: "released"; id: string; attempt: number }
  /** The handler asked to run again later: back to queued, the attempt not counted. */
  | { kind: "snoozed"; id: string; attempt: number; delayMs: number }
) & {
  /** For a job claimed ahead, whose start the database may not have: when it started (ms since the epoch, database clock). */
  startedMs?: number;
};

export interface ErrorRecord {
  attempt: number;
  name: string;
  message: string;
  stack?: string;
  worker: string;
}

export interface FinishResult {
  /** False when the end did not apply: the job was no longer this worker's (reaped, or reclaimed), or the end was never written. */
  applied: boolean;
  status: JobStatus | null;
  /**
   * The end was never written: the database could not be reached before the
   * worker gave up (its stop's budget ended, or its pool ended), or it refused
   * a value even written plain. The job stays running under this worker until
   * the heartbeat or the reaper gives it back, and it runs again.
   */
  unwritten?: true;
}

/**
 * A failed write is tried again after 50 ms, then twice as long each time, at
 * most this: once the database is back, ends wait at most about as long as a
 * pool takes to reconnect (src/db/connection.ts). A cap of 5 s left a worker's
 * ends, and everything ended behind them, unwritten for up to 5 s after a
 * long outage.
 */
export const FINISH_RETRY_MAX_MS = 1000;

/** What an end that was not written reports. */
const notWritten = (): FinishResult => ({ applied: false, status: null, unwritten: true });

interface Pending {
  outcome: Outcome;
  done: (r: FinishResult) => void;
}

/** An error record that only says what it was: for an end whose own record Postgres refused. */
function plainError(e: ErrorRecord): ErrorRecord {
  return { attempt: e.attempt, name: "UnstorableError", message: "the attempt's error could not be stored as it was given", worker: e.worker };
}

/**
 * Collects attempt ends for a few milliseconds and writes them together: one
 * round trip for a batch, which is most of a queue's throughput. A failed
 * write is retried with backoff until it lands, so an outcome is never
 * dropped; if the worker dies first, its heartbeat lapses and the reaper
 * puts the jobs back.
 */
export class FinishBatcher {
  #pending: Pending[] = [];
  #timer: Timer | undefined;
  #flushing: Promise<void> | undefined;
  /** Ends of the write under way, until each is written (or given up). */
  #writing = 0;
  #abandoned = false;
  /** The wait before a failed write is tried again: abandon() ends it. */
  #retry: { timer: Timer; end: () => void } | undefined;

  constructor(
    private db: Pick<Db, "jobFinishMany">,
    private workerId: string,
    private delayMs: number,
    private now: () => Date | null,
    /** A write failed: tried again in retryInMs, or (null) a value was refused and the rows are written apart. */
    private onError: (error: unknown, retryInMs: number | null) => void,
    private maxBatch = 500,
    /** The batch window and the waits between tries. */
    private clock: Pick<Clock, "setTimeout" | "clearTimeout"> = systemClock,
  ) {}

  get size(): number {
    return this.#pending.length;
  }

  /** Ends not yet written: those waiting for the batch window, and the write under way's. */
  get unwritten(): number {
    return this.#pending.length + this.#writing;
  }

  /**
   * Queues an attempt's end; done is called once its write landed (or was
   * found stale). A callback, not a promise: a worker draining a backlog ends
   * tens of thousands of attempts a second.
   */
  add(outcome: Outcome, done: (r: FinishResult) => void): void {
    // A full batch is written at once; one call at the moment it fills is enough (a
    // flush takes what came after it too), where one per end past it, while a
    // write is under way, made a waiting flush per end.
    if (this.#pending.push({ outcome, done }) === this.maxBatch) void this.flush();
    else this.#timer ??= this.clock.setTimeout(() => void this.flush(), this.delayMs);
  }

  /**
   * Stops retrying failed writes: what has not landed is left to the reaper,
   * which puts the jobs back once this worker's row is gone or stale. A write
   * waiting to be tried again is given up at once, and its timer cleared.
   */
  abandon(): void {
    this.#abandoned = true;
    if (!this.#retry) return;
    this.clock.clearTimeout(this.#retry.timer);
    this.#retry.end();
  }

  /** Writes everything pending now; resolves when it has all landed. */
  async flush(): Promise<void> {
    if (this.#timer) {
      this.clock.clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    while (this.#flushing) await this.#flushing;
    if (this.#pending.length === 0) return;
    const batch = this.#pending.splice(0, this.maxBatch);
    this.#writing = batch.length;
    this.#flushing = this.#write(batch).finally(() => (this.#flushing = undefined));
    await this.#flushing;
    if (this.#pending.length > 0) await this.flush();
  }

  async #write(batch: Pending[], plain = false): Promise<void> {
    const rows: FinishRow[] = batch.map(({ outcome: o }) => ({
      id: o.id,
      attempt: o.attempt,
      kind: o.kind,
      result: o.kind === "completed" && !plain ? (o.result ?? null) : null,
      error: "error" in o ? (plain ? plainError(o.error) : o.error) : null,
      // (written plain, a retry or a snooze runs again now: its delay may be what was refused)
      delay_ms: o.kind === "retry" || o.kind === "snoozed" ? (plain ? 0 : o.delayMs) : null,
      started_ms: o.startedMs ?? null,
    }));
    for (let tries = 0; ; tries++) {
      try {
        // one status per row, in order (a batch can hold a stale attempt's end beside the current one's)
        const statuses = await this.db.jobFinishMany(rows, this.workerId, this.now());
        this.#settled(batch, (i) => ({ applied: statuses[i] != null, status: statuses[i] ?? null }));
        return;
      } catch (error) {
        // An ended pool, or a worker stopped, can never take the write: leave it to the reaper at once.
        const code = (error as { code?: string }).code;
        if (this.#abandoned || code === "CONNECTION_ENDED" || isStopped(error)) return this.#settled(batch, notWritten);
        // Postgres refused a value (a data exception): trying the same rows again would never land,
        // and every end behind them would wait. The other rows are written without the one refused,
        // and that one with its error as plain text, no result and no delay. Refused even so, it is
        // left unwritten: the worker's next heartbeat finds the job held by no run here and gives it back.
        if (typeof code === "string" && code.startsWith("22")) {
          this.onError(error, null);
          if (plain) return this.#settled(batch, notWritten);
          if (batch.length === 1) return this.#write(batch, true);
          const half = Math.ceil(batch.length / 2);
          await this.#write(batch.slice(0, half));
          return this.#write(batch.slice(half));
        }
        const wait = Math.min(FINISH_RETRY_MAX_MS, 50 * 2 ** tries);
        this.onError(error, wait);
        await new Promise<void>((end) => (this.#retry = { timer: this.clock.setTimeout(end, wait), end }));
        this.#retry = undefined;
        if (this.#abandoned) return this.#settled(batch, notWritten);
      }
    }
  }

  /** A part of the write under way ended: no longer counted unwritten when its callbacks run. */
  #settled(batch: Pending[], result: (i: number) => FinishResult): void {
    this.#writing -= batch.length;
    batch.forEach((p, i) => p.done(result(i)));
  }
}
