import * as v from "valibot";
import { type BackoffOptions, backoffDelay } from "./backoff.ts";
import { type Clock, systemClock } from "../shared/clock.ts";
import type { ClaimedJob, JobContext, ParentJob, WorkerMiddleware } from "./context.ts";
import { runWith } from "../shared/middleware.ts";
import { errorRecord, errorText } from "../shared/error-record.ts";
import { JobCancelledError, JobReleasedError, JobSnooze, JobTimeoutError, PermanentError } from "../shared/errors.ts";
import type { Emitter } from "../shared/events.ts";
import type { FinishBatcher, FinishResult, Outcome } from "./finisher.ts";
import { toJsonText } from "../shared/json.ts";
import type { Logger } from "../shared/logger.ts";
import type { ProgressWriter } from "./progress.ts";
import type { LogWriter } from "./logs.ts";
import type { ResolvedTask } from "../shared/task.ts";
import type { WorkerEvents, WorkerStats } from "./types.ts";
import { abort, type Active } from "./attempt.ts";
import { type Waiting, WaitingJobs } from "./waiting.ts";
import { jobContext } from "./job-context.ts";
import type { QueueStatsRecorder } from "./queue-stats.ts";
import { reportOutcome } from "./report.ts";

/** Claim ahead about this much work (at the recent run time) when there is a backlog. */
const PREFETCH_WINDOW_MS = 50;
/** Never hold more than this many claimed jobs beyond the slots. */
const PREFETCH_MAX = 500;

export interface JobRunnerDeps {
  workerId: string;
  concurrency: number;
  /** The worker's queues, earliest first: jobs waiting for a slot start in this order. @default one list, in claim order */
  queues?: readonly string[];
  tasks: Map<string, ResolvedTask>;
  logger: Logger;
  events: Emitter<WorkerEvents>;
  stats: WorkerStats;
  /** Per-queue counts of starts and ends for the per-minute figures; none when they are off. */
  queueStats?: QueueStatsRecorder | undefined;
  finisher: FinishBatcher;
  progress: ProgressWriter;
  logs: LogWriter;
  /** A job's parents in a flow (ctx.parents). */
  parents(jobId: string): Promise<ParentJob[]>;
  /** Wraps each run, in order (`worker.use`); read at each run, so what is added later applies to later runs. */
  middleware?: readonly WorkerMiddleware[];
  backoff?: BackoffOptions;
  timeoutMs?: number;
  /** Timers and wall time (timeouts, how long a job claimed ahead has waited). @default the system clock */
  clock?: Clock;
  /** A slot came free (the attempt ended locally; its write may still be pending). */
  onSlotFree(): void;
  /** An attempt's end was written (or found stale). */
  onWritten(outcome: Outcome, result: FinishResult): void;
}

/** What other parts read of the jobs waiting for a slot: how many. */
export type WaitingCount = { readonly waiting: { readonly size: number } };

/**
 * Runs claimed jobs to an outcome: validates the payload, calls the handler
 * with its context, enforces the timeout, turns cancel and release requests
 * into aborts, and hands each outcome to the finish batcher. An attempt ends
 * exactly once, whichever comes first: the handler, its timeout, a cancel or
 * a release. A handler that ignores its signal keeps running detached, but
 * its job and its slot are already settled.
 */
export class JobRunner {
  readonly active = new Map<string, Active>();
  /** Claimed ahead, waiting for a slot: started earlier queues first, then oldest first. */
  readonly waiting: WaitingJobs;
  /** Jobs ended here whose outcome has not been written yet. */
  readonly finishing = new Set<string>();
  /** Moving average of how long a run takes, in ms; null before the first. */
  #runMs: number | null = null;

  #clock: Clock;

  constructor(private deps: JobRunnerDeps) {
    this.#clock = deps.clock ?? systemClock;
    this.waiting = new WaitingJobs(deps.queues);
  }

  /** Jobs running now. */
  get size(): number {
    return this.active.size;
  }

  /** Whether the database's "running on this worker" is true of this job here. */
  holds(id: string): boolean {
    return this.active.has(id) || this.waiting.has(id) || this.finishing.has(id);
  }

  /**
   * How many jobs to claim beyond the free slots when there is a backlog:
   * about PREFETCH_WINDOW_MS of work at the recent run time, at most
   * PREFETCH_MAX. Short jobs get a deep buffer (a claim round trip per job
   * would be most of their cost); long jobs get none, so a busy worker never
   * sits on jobs an idle one could run.
   */
  prefetch(): number {
    if (this.#runMs === null) return 0;
    const slots = this.deps.concurrency;
    return Math.min(PREFETCH_MAX, Math.floor((slots * PREFETCH_WINDOW_MS) / Math.max(this.#runMs, 0.01)));
  }

  /** Starts what fits in the free slots and keeps the rest waiting, in claim order. */
  accept(jobs: ClaimedJob[], unstarted: ReadonlyMap<string, number> = new Map()): void {
    const now = this.#clock.now();
    for (const job of jobs) {
      // Claimed again while this worker still runs it (its first claim was lost in
      // a database crash): the run under way is the one, and its end applies.
      if (this.holds(job.id)) continue;
      this.waiting.set(job.id, { job, since: now, clockOffset: unstarted.get(job.id) });
    }
    this.#startWaiting();
  }

  /** Gives back jobs claimed but not taken in (a claim that came back as the worker stopped). */
  giveBack(jobs: ClaimedJob[]): void {
    for (const job of jobs) {
      if (!this.holds(job.id)) this.#endUnstarted(job, { kind: "released", id: job.id, attempt: job.attempt });
    }
  }

  /** Writes a release for a job the database shows here but this worker does not hold. */
  releaseStray(id: string, attempt: number): void {
    if (this.holds(id)) return;
    // Held as finishing until written, so the next heartbeat does not add it again.
    this.finishing.add(id);
    this.deps.finisher.add({ kind: "released", id, attempt }, () => this.finishing.delete(id));
  }

  /** Set when the worker stops: jobs still waiting are given back, not started. */
  closed = false;

  #startWaiting(): void {
    if (this.closed) return;
    while (this.active.size < this.deps.concurrency) {
      const next = this.waiting.next();
      if (next === undefined) return;
      const [id, { job, clockOffset }] = next;
      this.waiting.delete(id);
      this.run(job, clockOffset);
    }
  }

  /** Gives back jobs that waited longer than ms for a slot (the runs got slower). */
  releaseWaitingOlderThan(ms: number): number {
    const cutoff = this.#clock.now() - ms;
    return this.#releaseWaitingWhere((w) => w.since <= cutoff);
  }

  /** Gives back the jobs of a queue waiting for a slot (it was paused or limited); returns how many. */
  releaseWaitingOf(queue: string): number {
    return this.#releaseWaitingWhere((w) => w.job.queue === queue);
  }

  #releaseWaitingWhere(given: (w: Waiting) => boolean): number {
    let n = 0;
    for (const [id, w] of this.waiting) {
      if (!given(w)) continue;
      this.waiting.delete(id);
      this.#endUnstarted(w.job, { kind: "released", id, attempt: w.job.attempt });
      n++;
    }
    return n;
  }

  /** Gives back every job waiting for a slot. */
  releaseWaiting(): void {
    this.releaseWaitingOlderThan(-Infinity);
  }

  #endUnstarted(job: ClaimedJob, outcome: Outcome): void {
    this.finishing.add(job.id);
    this.deps.finisher.add(outcome, (result) => {
      this.finishing.delete(job.id);
      reportOutcome(this.deps, job, outcome, result);
      this.deps.onWritten(outcome, result);
    });
  }

  /** Starts a job; clockOffset (from its claim) when the database has no start time for it. */
  run(job: ClaimedJob, clockOffset?: number): void {
    const { deps } = this;
    const task = deps.tasks.get(job.task)!;
    const entry: Active = { job, settled: false, startedAt: performance.now() };
    this.active.set(job.id, entry);
    if (clockOffset !== undefined) {
      entry.startMs = clockOffset + entry.startedAt;
      deps.progress.started(job.id, job.attempt, entry.startMs);
    }
    const timeoutMs = job.timeoutMs ?? task.settings.timeoutMs ?? deps.timeoutMs;
    if (timeoutMs !== undefined && timeoutMs !== null) {
      entry.timer = this.#clock.setTimeout(() => {
        const error = new JobTimeoutError(timeoutMs);
        abort(entry, error);
        this.#fail(entry, task, error);
      }, timeoutMs);
    }
    const ctx = jobContext(entry, deps);
    deps.queueStats?.started(job.queue, job.runAt);
    if (deps.events.has("job:started")) deps.events.emit("job:started", { workerId: deps.workerId, job });
    void this.#execute(entry, task, ctx);
  }

  /** Aborts a running job with JobCancelledError; it ends as cancelled. A waiting one ends unstarted. */
  cancel(jobId: string): void {
    const waiting = this.waiting.get(jobId);
    if (waiting) {
      this.waiting.delete(jobId);
      const { job } = waiting;
      // Never run: given back, and the cancel asked for in the database makes it cancelled
      // without counting an attempt or recording an error.
      return this.#endUnstarted(job, { kind: "released", id: jobId, attempt: job.attempt });
    }
    const entry = this.active.get(jobId);
    if (!entry || entry.settled) return;
    const error = new JobCancelledError();
    abort(entry, error);
    this.#fail(entry, this.deps.tasks.get(entry.job.task)!, error);
  }

  /** Gives back every waiting job, and aborts every running one with JobReleasedError and gives it back. */
  releaseAll(reason: string): void {
    this.releaseWaiting();
    for (const entry of [...this.active.values()]) {
      abort(entry, new JobReleasedError(reason));
      this.#settle(entry, { kind: "released", id: entry.job.id, attempt: entry.job.attempt });
    }
  }

  async #execute(entry: Active, task: ResolvedTask, ctx: JobContext) {
    try {
      const middleware = this.deps.middleware ?? [];
      let result: unknown;
      if (middleware.length === 0 && !task.schema) {
        // The common case, without the chain's closures. A handler that throws at once
        // fails after this turn, as a rejection would, not inside run() (which may be
        // starting others).
        let returned: unknown;
        try {
          returned = task.handler(entry.job.payload, ctx);
        } catch (error) {
          returned = Promise.reject(error);
        }
        result = await returned;
      } else {
        result = await runWith(middleware, ctx, () => this.#call(task, entry.job.payload, ctx));
      }
      if (entry.settled) return;
      let stored: unknown = null;
      if (result !== undefined) {
        try {
          stored = JSON.parse(toJsonText(result, "result"));
        } catch (error) {
          throw new PermanentError(`the handler returned a result that cannot be stored: ${errorText(error)}`);
        }
      }
      this.#settle(entry, { kind: "completed", id: entry.job.id, attempt: entry.job.attempt, result: stored });
    } catch (error) {
      this.#fail(entry, task, error);
    }
  }

  /** The handler, given the payload its task's schema made of the job's. */
  async #call(task: ResolvedTask, payload: unknown, ctx: JobContext): Promise<unknown> {
    if (task.schema) {
      const checked = await v.safeParseAsync(task.schema, payload);
      if (!checked.success) {
        const what = checked.issues.map((i) => `${v.getDotPath(i) ?? "payload"}: ${i.message}`).join("; ");
        throw new PermanentError(`payload does not match the task's schema: ${what}`);
      }
      payload = checked.output;
    }
    return task.handler(payload, ctx);
  }

  #fail(entry: Active, task: ResolvedTask, error: unknown) {
    if (entry.settled) return;
    const { job } = entry;
    if (error instanceof JobSnooze) {
      return this.#settle(entry, { kind: "snoozed", id: job.id, attempt: job.attempt, delayMs: error.delayMs });
    }
    const record = errorRecord(error, job.attempt, this.deps.workerId);
    if (error instanceof JobCancelledError) {
      return this.#settle(entry, { kind: "cancelled", id: job.id, attempt: job.attempt, error: record });
    }
    if (error instanceof PermanentError || job.attempt >= job.maxAttempts) {
      return this.#settle(entry, { kind: "failed", id: job.id, attempt: job.attempt, error: record });
    }
    const delayMs = backoffDelay(job.attempt, task.settings.backoff ?? this.deps.backoff);
    this.#settle(entry, { kind: "retry", id: job.id, attempt: job.attempt, error: record, delayMs });
  }

  #settle(entry: Active, outcome: Outcome) {
    if (entry.settled) return;
    entry.settled = true;
    this.#clock.clearTimeout(entry.timer);
    const { deps } = this;
    this.active.delete(entry.job.id);
    this.finishing.add(entry.job.id);
    deps.progress.forget(entry.job.id);
    const ran = performance.now() - entry.startedAt;
    // Claimed ahead: the end's write records the start too (if the progress write has not).
    if (entry.startMs !== undefined) outcome.startedMs = entry.startMs;
    this.#runMs = this.#runMs === null ? ran : this.#runMs * 0.9 + ran * 0.1;
    this.#startWaiting();
    deps.onSlotFree();
    // A job's log lines are written before its end, so a follower sees them before the final status.
    deps.logs.whenWritten(entry.job.id, () =>
      deps.finisher.add(outcome, (result) => {
        this.finishing.delete(entry.job.id);
        reportOutcome(this.deps, entry.job, outcome, result);
        deps.onWritten(outcome, result);
      }),
    );
  }
}
