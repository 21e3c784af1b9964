import type postgres from "postgres";
import { openSql, POOL_SIZE_WORKER_DEFAULT } from "../db/connection.ts";
import { createDb, type Db } from "../db/db.ts";
import { Statements } from "../db/statements.ts";
import { Pruner } from "../maintenance/pruner.ts";
import { Reaper } from "../maintenance/reaper.ts";
import { Scheduler } from "../maintenance/scheduler.ts";
import { Vacuum } from "../maintenance/vacuum.ts";
import type { Clock } from "../shared/clock.ts";
import { errorText } from "../shared/error-record.ts";
import type { Emitter } from "../shared/events.ts";
import type { Logger } from "../shared/logger.ts";
import type { Service } from "../shared/service.ts";
import type { ResolvedTask } from "../shared/task.ts";
import { Claimer } from "./claimer.ts";
import { FinishBatcher, type FinishResult, type Outcome } from "./finisher.ts";
import { Lease } from "./lease.ts";
import { Listener } from "./listener.ts";
import * as d from "./options.ts";
import { ProgressWriter } from "./progress.ts";
import { LogWriter } from "./logs.ts";
import type { WorkerMiddleware } from "./context.ts";
import { FULL_PASSES, Roster, type Wake } from "./roster.ts";
import { QueueStatsRecorder, QueueStatsWriter } from "./queue-stats.ts";
import { QueueWatch } from "./queue-watch.ts";
import { JobRunner, type WaitingCount } from "./runner.ts";
import type { WorkerEvents, WorkerStats } from "./types.ts";

/** What the parts share with the worker that composes them. */
export interface PartsContext {
  opts: d.WorkerOptions;
  id: string;
  schema: string;
  queues: string[];
  concurrency: number;
  staleAfterMs: number;
  logger: Logger;
  clock: Clock;
  dbNow: () => Date | null;
  tasks: Map<string, ResolvedTask>;
  events: Emitter<WorkerEvents>;
  stats: WorkerStats;
  fail: (during: string) => (error: unknown) => void;
  /** The worker's middleware, in order; the same array `use()` adds to. */
  middleware: readonly WorkerMiddleware[];
  /** A slot came free: wakes whoever waits for one (runAvailable, a graceful stop). */
  slotFreed(): void;
  /** Whether claims may run now (the worker runs and holds its lease). */
  claimsOpen(lease: Lease): boolean;
  /** runAvailable drives the claims. */
  driven(): boolean;
}

/** The parts a worker is made of, built when it starts. */
export interface Parts {
  sql: postgres.Sql;
  owned: boolean;
  db: Db;
  /** The statements the worker has in flight on its pool. */
  statements: Statements;
  finisher: FinishBatcher;
  progress: ProgressWriter;
  logs: LogWriter;
  runner: JobRunner;
  claimer: Claimer;
  lease: Lease;
  listener: Listener;
  /** Whether the worker LISTENs; false behind a transaction-mode pooler without a listenConnection: it polls. */
  listens: boolean;
  /** Reads its queues' settings for pauses and tighter limits: a polling worker at each poll, a listening one when LISTEN is back. */
  queueWatch: QueueWatch;
  roster: Roster;
  announceRoster(): Promise<void>;
  reaper: Reaper;
  scheduler: Scheduler;
  /** Writes the per-minute figures; null when they are off. */
  statsWriter: QueueStatsWriter | null;
  /** The loops that run only in "listen" mode, while running. */
  maintenance: Service[];
}

/**
 * What keeps a worker's slots fed between the runner, the claimer and the
 * finish batcher: claim again as the jobs claimed ahead run low, and write
 * ends at once when nothing is left to overlap with. (The bench's worker-cpu
 * wires the parts with these too.)
 */
export function refillHooks(
  runner: Pick<JobRunner, "size" | "prefetch"> & WaitingCount,
  claimer: Pick<Claimer, "backlog" | "request" | "wakeIn">,
  finisher: Pick<FinishBatcher, "flush">,
) {
  return {
    slotFreed(): void {
      // Claim again as soon as the backlog runs low, without waiting for the finish write.
      if (claimer.backlog && runner.waiting.size <= runner.prefetch() / 2) void claimer.request("slots freed");
      // Nothing left to overlap with: write what has finished now rather than after the batch window.
      if (runner.size === 0 && runner.waiting.size === 0) void finisher.flush();
    },
    written(outcome: Outcome, result: FinishResult): void {
      if ((outcome.kind === "retry" || outcome.kind === "snoozed") && result.status === "queued") claimer.wakeIn(outcome.delayMs);
      if (claimer.backlog) void claimer.request("slots freed");
    },
  };
}

export function buildParts(w: PartsContext): Parts {
  const { opts, id, queues, concurrency, staleAfterMs, logger, clock, dbNow, tasks, events, stats, fail } = w;
  const taskNames = [...tasks.keys()];
  const finishBatchMs = opts.finishBatchMs ?? d.FINISH_BATCH_MS_DEFAULT;
  const pruneIntervalMs = opts.pruneIntervalMs ?? d.PRUNE_INTERVAL_MS_DEFAULT;
  const onError = (during: string, error: unknown) => fail(during)(error);
  const pooled = opts.pooler === "transaction";
  const listens = !pooled || opts.listenConnection !== undefined;
  const { sql, owned } = openSql(opts.connection, {
    applicationName: `pgpulse worker ${id}`.slice(0, 63), max: opts.poolSize ?? POOL_SIZE_WORKER_DEFAULT, pooler: opts.pooler,
  });
  // What the worker has in flight on its pool: its stop cancels what is left when its budget ends.
  const statements = new Statements(sql.options);
  const db = createDb(sql, { schema: w.schema, prepare: !pooled, statements, ...(opts.listenConnection ? { session: opts.listenConnection } : {}) });
  const finisher = new FinishBatcher(db, id, finishBatchMs, dbNow, (error, wait) =>
    logger.warn(wait === null
      ? `the database refused a value of a finished job; writing the rows apart (the refused one with a plain error and no result): ${errorText(error)}`
      : `writing finished jobs failed, retrying in ${wait} ms: ${errorText(error)}`), undefined, clock);
  const progress = new ProgressWriter(db, id, opts.progressIntervalMs ?? d.PROGRESS_INTERVAL_MS_DEFAULT, finishBatchMs, fail("writing progress"));
  const logs = new LogWriter(db, opts.logIntervalMs ?? d.LOG_INTERVAL_MS_DEFAULT, opts.logMaxLines ?? d.LOG_MAX_LINES_DEFAULT,
    opts.logMaxBytes ?? d.LOG_MAX_BYTES_DEFAULT, fail("writing job logs"));
  const queueStats = opts.stats === false ? undefined : new QueueStatsRecorder();
  const runner: JobRunner = new JobRunner({
    workerId: id, concurrency, queues, tasks, logger, events, stats, queueStats, finisher, progress, logs, clock,
    parents: (jobId) => db.flowParents(jobId, 100_000),
    middleware: w.middleware,
    ...(opts.backoff ? { backoff: opts.backoff } : {}),
    ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
    onSlotFree() {
      w.slotFreed();
      refill.slotFreed();
    },
    onWritten: (outcome, result) => refill.written(outcome, result),
  });
  const pollIntervalMs = opts.pollIntervalMs ?? d.POLL_INTERVAL_MS_DEFAULT;
  const heartbeatIntervalMs = opts.heartbeatIntervalMs ?? d.HEARTBEAT_INTERVAL_MS_DEFAULT;
  const claimer: Claimer = new Claimer({
    db, workerId: id, queues, tasks: taskNames, concurrency, runner, clock, dbNow, logger, events, onError,
    pollIntervalMs,
    // Only a worker that cannot LISTEN backs off while idle (one that listens is woken by notifications),
    // and reads its queues' settings at its polls (one that listens is told of pauses).
    ...(listens ? {} : { pollIntervalMaxMs: opts.pollIntervalMaxMs ?? d.POLL_INTERVAL_MAX_MS_DEFAULT, watchQueues: () => queueWatch.check() }),
    open: () => w.claimsOpen(lease),
    driven: w.driven,
    unwritten: () => finisher.unwritten,
  });
  // A polling worker reads its queues' settings at each poll; a listening one when LISTEN comes
  // back after an outage, for the pauses and limits told while it was not listening.
  const queueWatch = new QueueWatch({ db, queues, restrict: (queue) => claimer.restrict(queue), onError });
  let ups = 0;
  const refill = refillHooks(runner, claimer, finisher);
  const lease: Lease = new Lease({
    db, workerId: id, queues, tasks: taskNames, concurrency, meta: opts.meta ?? {}, runner, claimer, clock, dbNow, logger, events, onError,
    // runAvailable and a polling worker hear no notification: they must not be drawn for one.
    listening: () => listens && !w.driven(),
    heartbeatIntervalMs,
    staleAfterMs,
    // After an outage, a LISTEN that postgres.js failed to re-issue is replaced at once.
    onRecovered: (since) => void listener.recover(since).catch(fail("replacing the LISTEN connection")),
    // (runAvailable waits for this, as for a free slot)
    onSure: () => w.slotFreed(),
  });
  const roster = new Roster({
    db, workerId: id, clock, dbNow, onError: fail("reading the roster of workers"),
    // Three missed heartbeats take a worker out of the draw (the reaper takes its jobs later, at staleAfterMs).
    withinMs: Math.min(staleAfterMs, 3 * heartbeatIntervalMs),
    intervalMs: heartbeatIntervalMs,
    onRead: (workers) => events.emit("worker:roster", { workerId: id, workers }),
  });
  /** Tells every worker to read the roster again: one joined or left. */
  const announceRoster = () => db.notifyControl(JSON.stringify({ schema: w.schema, type: "roster" })).catch(fail("announcing a change of workers"));
  /** Passes a notification on to the next worker in its draw, with the jobs left of what it announced. */
  const pass = (wake: Wake, chosen: string[], took = 0) => {
    const n = wake.n === undefined ? undefined : wake.n - took;
    void db.notifyPass(JSON.stringify({ schema: w.schema, queues: chosen, t: wake.t, h: (wake.h ?? 0) + 1, n }))
      .catch(fail("passing a notification on"));
  };
  const listener = new Listener({
    db,
    clock,
    workerId: id,
    healthIntervalMs: opts.listenerHealthIntervalMs ?? d.LISTENER_HEALTH_INTERVAL_MS_DEFAULT,
    healthTimeoutMs: opts.listenerHealthTimeoutMs ?? d.LISTENER_HEALTH_TIMEOUT_MS_DEFAULT,
    onEnqueued(wake) {
      const drawn = roster.decide(wake, queues);
      if (!drawn.claim) return;
      const hop = wake.h ?? 0;
      // Passing on stops before the draw comes round to the first worker again.
      const passOn = drawn.chosen.length > 0 && hop + 1 < drawn.fleet;
      if (!w.claimsOpen(lease)) {
        if (passOn) pass(wake, drawn.chosen);
      } else if (runner.size >= concurrency) {
        claimer.markBacklog();
        // When this worker is busy the next may be too: pass on a few times only.
        if (passOn && hop < FULL_PASSES) pass(wake, drawn.chosen);
      } else {
        // A claim that came back full may leave jobs behind: wake the next worker for them,
        // unless it took every job the notification announced.
        // A claim already out began before this notification: what it took says nothing of these jobs.
        const joined = claimer.claiming;
        void claimer.request("notify").then((got) => {
          const took = joined ? 0 : got;
          if (passOn && claimer.backlog && (wake.n === undefined || took < wake.n)) pass(wake, drawn.chosen, took);
        });
      }
    },
    onControl(message) {
      if (message.type === "cancel") runner.cancel(message.job);
      else if (message.type === "queue" && typeof message.queue === "string") claimer.restrict(message.queue);
      // With claims closed (starting, re-registering its lease, stopping) the worker skips the
      // read: a stopping one draws for nobody, and its pool may end under the read; the others
      // read the roster at their next heartbeat.
      else if (message.type === "roster" && w.claimsOpen(lease)) void roster.runOnce().catch(fail("reading the roster of workers"));
    },
    onUp() {
      events.emit("listener:up", { workerId: id });
      // Pauses and tighter limits told while LISTEN was not in place went unheard (at the first
      // LISTEN, the start reads the settings itself).
      if (ups++ > 0) void queueWatch.check();
      // Anything enqueued while LISTEN was not in place went unheard.
      void claimer.request("listener up");
    },
    onDown(reason) {
      logger.warn(`LISTEN connection lost: ${reason}; replacing it`);
      events.emit("listener:down", { workerId: id, reason });
    },
  });
  const deps = { workerId: id, clock, dbNow, logger, events, onError: fail("a background task") };
  const reaper = new Reaper({
    ...deps, db, staleAfterMs, intervalMs: opts.reaperIntervalMs ?? d.REAPER_INTERVAL_MS_DEFAULT,
    holdOff: () => lease.failingRecently,
    onWorkersGone: () => void announceRoster(),
  });
  const scheduler = new Scheduler({ ...deps, db, intervalMs: opts.scheduleIntervalMs ?? d.SCHEDULE_INTERVAL_MS_DEFAULT });
  const maintenance: Service[] = [reaper, claimer, scheduler];
  if (listens) maintenance.push(roster);
  if (opts.retention !== false) maintenance.push(new Pruner({ ...deps, db, retention: opts.retention ?? {}, intervalMs: pruneIntervalMs }));
  maintenance.push(new Vacuum({ ...deps, db, intervalMs: pruneIntervalMs }));
  const statsWriter = queueStats
    ? new QueueStatsWriter({ ...deps, onError: fail("writing per-minute figures"), db, recorder: queueStats, intervalMs: opts.statsIntervalMs ?? d.STATS_INTERVAL_MS_DEFAULT })
    : null;
  if (statsWriter) maintenance.push(statsWriter);
  return {
    sql, owned, db, statements, finisher, progress, logs, runner, claimer, lease, listener, listens, queueWatch, roster, announceRoster, reaper, scheduler, statsWriter, maintenance,
  };
}
