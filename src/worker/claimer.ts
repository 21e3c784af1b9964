import type { ClaimedJob } from "../shared/types.ts";
import { isLeaseLostInClaim } from "../db/claim.ts";
import type { Db } from "../db/db.ts";
import type { Clock, Timer } from "../shared/clock.ts";
import type { Emitter } from "../shared/events.ts";
import { Periodic, type Service } from "../shared/service.ts";
import type { Logger } from "../shared/logger.ts";
import type { JobRunner, WaitingCount } from "./runner.ts";
import type { WorkerEvents } from "./types.ts";

/** A job claimed ahead that has waited this long for a slot goes back to the queue. */
export const WAITING_MAX_MS = 5000;

/**
 * The most ends a worker holds that it ran but has not written: at this many it
 * claims nothing until some are written. Each is a job that runs again if the
 * worker dies (the reaper puts it back), and that a stop must write within its
 * 5 s. A healthy drain holds at most a few thousand (a write or two of 500 under
 * way, and what ran meanwhile); one whose writes fall behind (a slow or busy
 * database) held 25,000.
 */
export const UNWRITTEN_MAX = 5000;

export interface ClaimerOptions {
  db: Pick<Db, "jobClaim">;
  workerId: string;
  queues: readonly string[];
  tasks: readonly string[];
  concurrency: number;
  runner: Pick<JobRunner, "size" | "prefetch" | "accept" | "giveBack" | "releaseWaitingOlderThan" | "releaseWaitingOf"> & WaitingCount;
  /** The sweep: how often to claim when no notification came. */
  pollIntervalMs: number;
  /**
   * Each sweep that finds nothing while no job runs doubles the sweep's
   * interval, up to this (a worker without LISTEN, which only polls); a claim
   * that gets jobs resets it. @default pollIntervalMs: no backoff
   */
  pollIntervalMaxMs?: number;
  /**
   * A worker without LISTEN, which hears of no pause: reads its queues' settings
   * at each sweep, before it claims, and restricts those paused or limited since
   * (queue-watch.ts).
   */
  watchQueues?: () => Promise<unknown>;
  clock: Clock;
  dbNow: () => Date | null;
  logger: Logger;
  events: Emitter<WorkerEvents>;
  onError: (during: string, error: unknown) => void;
  /**
   * Whether claims may run, and whether a claim's jobs may be taken in when it
   * returns: false once the worker stops, and while its lease is being
   * re-registered.
   */
  open(): boolean;
  /** runAvailable drives the claims itself: requests do nothing and nobody claims ahead. */
  driven(): boolean;
  /** Ends run and not yet written (at UNWRITTEN_MAX no claim is made; a written end claims again). @default none */
  unwritten?: () => number;
}

/**
 * Decides when this worker claims and how many jobs. Its state:
 * - idle, or claiming: at most one claim is in flight (`#inFlight`); a request
 *   that comes meanwhile folds into one more claim after it (`#again`).
 * - backlog (`#more`): the last claim filled every free slot, or a
 *   notification came while the slots were full, so there may be more jobs
 *   waiting: claim again as slots free up, and a little ahead of them.
 * - a wake-up timer (`#wakeAt`) when a rate limit or a retry's backoff says
 *   when jobs become runnable; only the earliest is kept.
 * Claims are requested by the listener (notifications), the sweep (every
 * pollIntervalMs, in case one was missed), slots freeing and the wake-up timer.
 */
export class Claimer implements Service {
  #inFlight: Promise<number> | undefined;
  #again = false;
  #more = false;
  #wakeAt = Infinity;
  #wakeTimer: Timer | undefined;
  #sweep: Periodic;
  /** Sweeps in a row that found nothing to do. */
  #idleSweeps = 0;
  /** Counts restrict() calls; each queue restricted remembers the count it was restricted at. */
  #changes = 0;
  #restricted = new Map<string, number>();
  /** When a rate limit allows the next start, as the last claim said. */
  #rateWakeAt: number | null = null;
  /** Aborts the claim in flight (cancel()). */
  #abort: AbortController | undefined;

  constructor(private o: ClaimerOptions) {
    this.#sweep = new Periodic(() => this.runOnce(), () => this.sweepIntervalMs, o.clock, (e) => o.onError("a background task", e));
  }

  /** The longest wait between sweeps: pollIntervalMaxMs, never below pollIntervalMs. */
  get sweepIntervalMaxMs(): number {
    return Math.max(this.o.pollIntervalMaxMs ?? this.o.pollIntervalMs, this.o.pollIntervalMs);
  }

  /** The wait before the next sweep: pollIntervalMs, doubled per idle sweep up to sweepIntervalMaxMs. */
  get sweepIntervalMs(): number {
    return Math.min(this.sweepIntervalMaxMs, this.o.pollIntervalMs * 2 ** Math.min(this.#idleSweeps, 30));
  }

  /** A claim is in flight. */
  get claiming(): boolean {
    return this.#inFlight !== undefined;
  }

  /** The claim in flight, if any, settled (never rejects). */
  settled(): Promise<unknown> {
    return this.#inFlight ?? Promise.resolve();
  }

  /**
   * Cancels the claim in flight, if any, when the worker stops and waits for it no
   * longer: its statement is cancelled in the database (the claim undone), so that it
   * holds no connection, nor the process with it. Had it committed first, its jobs
   * are given back, as those of any claim that comes back once claims are closed.
   */
  cancel(): void {
    this.#abort?.abort();
  }

  /** There may be more jobs than slots: claim again as slots free up. */
  get backlog(): boolean {
    return this.#more;
  }

  /** Milliseconds until the next start a rate limit allows, as the last claim said (null: it said none). */
  get rateWakeInMs(): number | null {
    return this.#rateWakeAt === null ? null : Math.max(0, this.#rateWakeAt - this.o.clock.now());
  }

  /** A notification came while the slots were full. */
  markBacklog(): void {
    this.#more = true;
  }

  /** Starts the sweep. */
  start(): void {
    this.#sweep.start();
  }

  /** Ends the sweep and the wake-up timer; a claim in flight is left to settle (see settled()). */
  async stop(): Promise<void> {
    this.o.clock.clearTimeout(this.#wakeTimer);
    this.#wakeAt = Infinity;
    await this.#sweep.stop();
  }

  /**
   * One sweep: gives back jobs claimed ahead that waited too long (and, without
   * LISTEN, those of queues paused or limited since), and claims.
   */
  async runOnce(): Promise<number> {
    // Jobs claimed ahead should start within moments; if runs got slower, give them back.
    const released = this.o.runner.releaseWaitingOlderThan(WAITING_MAX_MS);
    if (released > 0) this.o.logger.debug(`gave back ${released} job(s) that waited too long for a slot`);
    if (this.o.watchQueues) await this.o.watchQueues();
    const got = await this.request("sweep");
    if (got === 0 && this.o.runner.size === 0) this.#idleSweeps++;
    return got;
  }

  /**
   * A queue was paused or limited: the jobs of it claimed ahead and not started go
   * back, and so do those a claim out now brings (it may have read the queue before
   * the change); then claim again, under the queue's new settings.
   */
  restrict(queue: string): void {
    if (!this.o.queues.includes(queue)) return;
    this.#restricted.set(queue, ++this.#changes);
    const n = this.o.runner.releaseWaitingOf(queue);
    if (n === 0) return;
    this.o.logger.debug(`gave back ${n} job(s) of queue ${queue}, paused or limited since they were claimed`);
    // Claim again once they are written back (a written end claims again while there is a backlog).
    this.#more = true;
  }

  /** Asks for a claim; resolves with how many jobs the claim it joined took. */
  request(reason: string): Promise<number> {
    const { o } = this;
    // In runAvailable, that loop alone decides what to claim.
    if (!o.open() || o.driven()) return Promise.resolve(0);
    if (this.#inFlight) {
      this.#again = true;
      return this.#inFlight;
    }
    this.#inFlight = this.claim(reason).finally(() => {
      this.#inFlight = undefined;
      if (this.#again && o.open()) {
        this.#again = false;
        // A notification that came during the claim may name jobs it did not see: claim
        // again now, or, with the slots full, as soon as they free up.
        if (o.runner.size + o.runner.waiting.size < o.concurrency) void this.request("again");
        else this.#more = true;
      }
    });
    return this.#inFlight;
  }

  /** Claims up to the free slots (and, with a backlog, ahead of them), at most cap; never throws. */
  async claim(reason: string, cap = Infinity): Promise<number> {
    const { o } = this;
    const { runner } = o;
    // Closed (stopping, re-registering, the lease in doubt): what it claimed it would give back.
    if (!o.open()) return 0;
    // With a backlog (the last claim came back full), claim a little ahead of
    // the free slots, so slots never wait on a round trip.
    const ahead = this.#more && !o.driven() ? runner.prefetch() : 0;
    const room = UNWRITTEN_MAX - (o.unwritten?.() ?? 0);
    const free = Math.min(o.concurrency + ahead - runner.size - runner.waiting.size, cap, room);
    if (free <= 0) {
      this.#more = true;
      return 0;
    }
    let jobs: ClaimedJob[];
    let unstarted: Map<string, number>;
    const changes = this.#changes;
    const abort = (this.#abort = new AbortController());
    try {
      const slots = Math.max(0, o.concurrency - runner.size - runner.waiting.size);
      const claimed = await o.db.jobClaim({
        queues: o.queues, tasks: o.tasks, limit: free, ahead: free - Math.min(free, slots), workerId: o.workerId, now: o.dbNow(),
      }, abort.signal);
      jobs = claimed.jobs;
      unstarted = claimed.unstarted;
      this.#rateWakeAt = claimed.wakeMs === null ? null : o.clock.now() + claimed.wakeMs;
      if (claimed.wakeMs !== null) this.wakeIn(claimed.wakeMs);
    } catch (error) {
      // Cancelled as the worker stopped: undone, nothing claimed.
      if (abort.signal.aborted) {
        o.logger.debug(`a claim was cancelled as the worker stopped: ${String(error)}`);
        return 0;
      }
      // Undone, nothing claimed: the next heartbeat finds the lease gone and re-registers.
      if (isLeaseLostInClaim(error)) {
        o.logger.debug("a claim found this worker's lease gone and was undone");
        return 0;
      }
      // If the claim committed but its reply was lost, the heartbeat's
      // reconciliation finds those jobs and gives them back.
      o.onError("claiming jobs", error);
      return 0;
    } finally {
      if (this.#abort === abort) this.#abort = undefined;
    }
    if (!o.open()) {
      // The worker began to stop (or lost its lease) while this claim was out.
      runner.giveBack(jobs);
      return 0;
    }
    this.#more = jobs.length === free;
    if (jobs.length > 0) this.#idleSweeps = 0;
    if (this.#changes !== changes) {
      // A queue was paused or limited while this claim was out: its jobs go back unstarted,
      // to be claimed again under its new settings.
      const changed = (job: ClaimedJob) => (this.#restricted.get(job.queue) ?? 0) > changes;
      const back = jobs.filter(changed);
      if (back.length > 0) {
        runner.giveBack(back);
        jobs = jobs.filter((job) => !changed(job));
        this.#more = true; // claimed again once they are written back
      }
    }
    o.events.emit("worker:claimed", { workerId: o.workerId, jobs, requested: free, reason });
    runner.accept(jobs, unstarted);
    return jobs.length;
  }

  /** Claims again in ms (a rate limit's next start, a retry's backoff), unless an earlier wake-up is set. */
  wakeIn(ms: number): void {
    const { clock } = this.o;
    const at = clock.now() + ms;
    if (!this.o.open() || at >= this.#wakeAt) return;
    this.#wakeAt = at;
    clock.clearTimeout(this.#wakeTimer);
    this.#wakeTimer = clock.setTimeout(() => {
      this.#wakeAt = Infinity;
      void this.request("timer");
    }, ms);
  }
}
