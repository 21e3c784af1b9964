import type { Db } from "../db/db.ts";
import type { Clock } from "../shared/clock.ts";
import type { Emitter } from "../shared/events.ts";
import type { Logger } from "../shared/logger.ts";
import { Periodic, type Service } from "../shared/service.ts";
import { isTransient } from "../shared/retry.ts";
import { timeLimit } from "../shared/timing.ts";
import type { Claimer } from "./claimer.ts";
import type { JobRunner, WaitingCount } from "./runner.ts";
import type { WorkerEvents } from "./types.ts";

export interface LeaseOptions {
  db: Pick<Db, "workerRegister" | "workerBeat" | "workerUnregister">;
  workerId: string;
  queues: readonly string[];
  tasks: readonly string[];
  concurrency: number;
  meta: Record<string, unknown>;
  /** Whether the worker LISTENs (read at each registration): only those are drawn for notifications. */
  listening: () => boolean;
  heartbeatIntervalMs: number;
  /** Others count this worker dead when its heartbeat is older than this. */
  staleAfterMs: number;
  runner: Pick<JobRunner, "size" | "releaseAll" | "cancel" | "holds" | "releaseStray"> & WaitingCount;
  claimer: Pick<Claimer, "claiming" | "settled" | "request">;
  clock: Clock;
  dbNow: () => Date | null;
  logger: Logger;
  events: Emitter<WorkerEvents>;
  onError: (during: string, error: unknown) => void;
  /**
   * A beat reached the database again after the database was unreachable (a
   * connection error, not a slow answer) from `since` (clock ms).
   */
  onRecovered?: (since: number) => void;
  /** The lease is no longer in doubt (a beat landed, or the worker registered again). */
  onSure?: () => void;
}

/**
 * The worker's lease (docs/job-lifecycle.md): its row in `workers` says
 * "these running jobs are mine", and a heartbeat every heartbeatIntervalMs
 * keeps it valid. Each beat also
 * - hands over the cancels asked for jobs running here (in case the control
 *   notification was missed);
 * - reconciles: a job the database has running here that this worker does not
 *   hold (a claim whose reply was lost) goes back to the queue unrun;
 * - finds the lease lost when the row is gone (the reaper declared this worker
 *   dead): the worker gives back its jobs and registers again.
 * When beats fail for longer than leaseMarginMs, the worker gives its running
 * jobs up before others may reap them, so that no job runs in two places.
 * States: leased; in doubt (`inDoubt`: a beat failed and none has landed for
 * longer than leaseMarginMs; no claims meanwhile); re-registering
 * (`reregistering`, no claims meanwhile).
 */
export class Lease implements Service {
  /** When a beat last failed: after an outage every heartbeat is stale, so the reaper holds off. */
  #beatFailedAt = -Infinity;
  /** When beats began failing for want of a connection, until one gets through again. */
  #failingSince: number | undefined;
  #lastBeatOkAt: number;
  /** "id:attempt" of jobs the last beat showed running here that this worker does not hold. */
  #strays = new Set<string>();
  #reregistering = false;
  #loop: Periodic;
  /** How long beats may fail before this worker gives its running jobs up. */
  readonly leaseMarginMs: number;

  constructor(private o: LeaseOptions) {
    this.#lastBeatOkAt = o.clock.now();
    this.leaseMarginMs = Math.max(o.staleAfterMs - 2 * o.heartbeatIntervalMs, o.staleAfterMs / 2);
    this.#loop = new Periodic(() => this.runOnce(), o.heartbeatIntervalMs, o.clock, (e) => o.onError("a background task", e));
  }

  get reregistering(): boolean {
    return this.#reregistering;
  }

  /**
   * A beat has failed since the last one that landed, and none has landed for
   * longer than leaseMarginMs: this worker gives up what it runs at its next
   * failed beat, so it claims nothing new until a beat gets through (jobs
   * claimed meanwhile would be started, then given back, and run again).
   */
  get inDoubt(): boolean {
    return this.#beatFailedAt > this.#lastBeatOkAt && this.o.clock.now() - this.#lastBeatOkAt > this.leaseMarginMs;
  }

  /**
   * The lease reached the database at sentAt (a beat, whose answer may come
   * late, or a registration); returns whether that ended a doubt.
   */
  #refreshed(sentAt: number): boolean {
    const doubted = this.inDoubt;
    this.#lastBeatOkAt = Math.max(this.#lastBeatOkAt, sentAt);
    if (!doubted || this.inDoubt) return false;
    this.o.onSure?.();
    return true;
  }

  /** A beat failed within the last staleAfterMs. */
  get failingRecently(): boolean {
    return this.o.clock.now() - this.#beatFailedAt < this.o.staleAfterMs;
  }

  /** Registers the worker; returns how many jobs of a previous run with this id went back. */
  register(): Promise<number> {
    const { o } = this;
    return o.db.workerRegister({
      workerId: o.workerId, queues: o.queues, tasks: o.tasks, concurrency: o.concurrency, meta: o.meta, listening: o.listening(), now: o.dbNow(),
    });
  }

  /** Starts the heartbeat, counting the lease as fresh from now. */
  start(): void {
    this.#lastBeatOkAt = this.o.clock.now();
    this.#loop.start();
  }

  stop(): Promise<void> {
    return this.#loop.stop();
  }

  /** Leaves: gives back what the database still has running here and deletes the row. */
  unregister(): Promise<void> {
    return this.o.db.workerUnregister(this.o.workerId, this.o.dbNow());
  }

  /** One heartbeat. */
  async runOnce(): Promise<void> {
    const { o } = this;
    const { clock, runner } = o;
    const claimInFlight = o.claimer.claiming;
    const sentAt = clock.now();
    const call = o.db.workerBeat(o.workerId, o.dbNow());
    // A beat that answers late still refreshed the lease, from when it was sent.
    void call.then((r) => {
      // Claims held back while the lease was in doubt (notifications included): claim now.
      if (r !== null && this.#refreshed(sentAt)) void o.claimer.request("heartbeat back");
    }, () => {});
    let result: Awaited<typeof call>;
    try {
      // A heartbeat that does not come back (a silent network) must not stall the loop.
      result = await timeLimit(call, Math.max(1, o.heartbeatIntervalMs / 2), "heartbeat", clock);
    } catch (error) {
      this.#beatFailedAt = clock.now();
      if (isTransient(error)) this.#failingSince ??= sentAt;
      // Others count this worker dead staleAfterMs after its last beat reached the database;
      // give the jobs up two heartbeats before that (this loop may be that late to look), so
      // they never run in two places.
      // (this beat failed: in doubt is silent for over leaseMarginMs)
      if (this.inDoubt && runner.size + runner.waiting.size > 0) {
        const silentMs = clock.now() - this.#lastBeatOkAt;
        o.logger.warn(`no heartbeat has reached the database for ${silentMs} ms; giving up the running jobs, which other workers may take`);
        runner.releaseAll("lease expired");
      }
      throw error;
    }
    if (this.#failingSince !== undefined) {
      const since = this.#failingSince;
      this.#failingSince = undefined;
      o.onRecovered?.(since);
    }
    if (result === null) return this.#lost();
    for (const jobId of result.cancel) runner.cancel(jobId);
    if (!claimInFlight && !o.claimer.claiming) this.#reconcile(result.running);
    o.events.emit("worker:heartbeat", { workerId: o.workerId });
  }

  /**
   * Jobs the database says this worker runs, but that it does not: a claim
   * that committed while its reply was lost. They go back to the queue unrun.
   * A job counts only when two heartbeats in a row show it so: one snapshot
   * can predate the write of a job that ended just then. Each release is also
   * guarded by the attempt, so a job that ended meanwhile is left alone.
   */
  #reconcile(running: string[]): void {
    const { runner, logger } = this.o;
    const seen = new Set<string>();
    for (const pair of running) {
      const jobId = pair.slice(0, pair.indexOf(":"));
      if (runner.holds(jobId)) continue;
      seen.add(pair);
      if (!this.#strays.has(pair)) continue;
      logger.warn(`job ${jobId} is marked running on this worker, which is not running it; giving it back`);
      runner.releaseStray(jobId, Number(pair.slice(pair.indexOf(":") + 1)));
    }
    this.#strays = seen;
  }

  async #lost(): Promise<void> {
    const { o } = this;
    o.logger.warn("the reaper declared this worker dead (heartbeat too old); giving back its jobs and registering again");
    this.#reregistering = true;
    try {
      await o.claimer.settled();
      o.runner.releaseAll("lease lost");
      o.events.emit("worker:lease-lost", { workerId: o.workerId });
      const sentAt = o.clock.now();
      await this.register();
      // (a fresh lease: what failed before it is over; the claim is asked for below)
      this.#refreshed(sentAt);
    } finally {
      this.#reregistering = false;
    }
    void o.claimer.request("registered again");
  }
}
