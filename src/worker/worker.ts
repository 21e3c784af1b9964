import type { ReapResult } from "../maintenance/reaper.ts";
import { upsertSchedule } from "../producer/schedules.ts";
import { UNWRITTEN_MAX } from "./claimer.ts";
import { buildParts, type Parts } from "./parts.ts";
import { type Clock, systemClock } from "../shared/clock.ts";
import { SCHEMA_DEFAULT } from "../shared/defaults.ts";
import { errorText } from "../shared/error-record.ts";
import { PgPulseError } from "../shared/errors.ts";
import { Emitter } from "../shared/events.ts";
import { consoleLogger, type Logger } from "../shared/logger.ts";
import type { WorkerMiddleware } from "./context.ts";
import { retryTransient } from "../shared/retry.ts";
import { resolveTasks } from "../shared/task.ts";
import { within } from "../shared/timing.ts";
import * as d from "./options.ts";
import { SlotWaiters } from "./slots.ts";
import { closeDb, Cut, STOP_CANCEL_MS, STOP_IO_TIMEOUT_MS, stopParts } from "./stop.ts";
import type { RunAvailableOptions, RunAvailableSummary, Worker, WorkerEvents, WorkerStats } from "./types.ts";

export type { WorkerOptions } from "./options.ts";
export type { RunAvailableOptions, RunAvailableSummary, Worker, WorkerEvents, WorkerStats } from "./types.ts";

/**
 * The worker's life: new -> starting -> running -> stopping -> stopped.
 * - starting: registering (waiting out a database that is down), LISTEN, a first reap.
 * - running: claims, heartbeats, the sweep and the maintenance services run.
 * - stopping: no more claims or maintenance; heartbeats and the listener (for
 *   cancels) go on while running jobs finish, up to the grace period.
 * - stopped: everything given back or written, the pool ended if ours.
 * A second stop() with no grace cuts the first one's wait short.
 */
type State = "new" | "starting" | "running" | "stopping" | "stopped";

/**
 * "listen": the long-running worker (LISTEN, the sweep, maintenance loops).
 * "available": runAvailable's, which drives the claims itself and runs no
 * loops but the heartbeat; the reaper runs once at start.
 */
type Mode = "listen" | "available";

/**
 * Creates a worker: claims jobs from its queues and runs their tasks,
 * `concurrency` at a time. It is composed of parts with one contract each
 * (start, stop, runOnce): the claimer, the lease, the job runner, the
 * listener, and the maintenance services (reaper, scheduler, pruner, vacuum).
 *
 * @example
 * const worker = createWorker({
 *   connection: process.env.DATABASE_URL!,
 *   tasks: { "send-email": async (payload, ctx) => ({ sent: true }) },
 *   concurrency: 10,
 * });
 * await worker.start();
 */
export function createWorker(options: d.WorkerOptions): Worker {
  const opts = d.parseWorkerOptions(options);
  const schema = opts.schema ?? SCHEMA_DEFAULT;
  const id = opts.id ?? `w-${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const queues = opts.queues ?? ["default"];
  const concurrency = opts.concurrency ?? d.CONCURRENCY_DEFAULT;
  const staleAfterMs = opts.staleAfterMs ?? d.STALE_AFTER_MS_DEFAULT;
  const logger: Logger = typeof opts.logger === "object" ? opts.logger : consoleLogger(id, opts.logger ?? "info");
  const dbNow = () => (opts.clock ? opts.clock() : null);
  const clock: Clock = systemClock;
  const tasks = resolveTasks(opts.tasks);
  const taskNames = [...tasks.keys()];

  const events = new Emitter<WorkerEvents>((error, event) =>
    logger.error(`an event handler for ${String(event)} threw`, { error: String(error) }),
  );
  const stats: WorkerStats = { completed: 0, failed: 0, retried: 0, cancelled: 0, released: 0, snoozed: 0 };
  const middleware: WorkerMiddleware[] = [...(opts.middleware ?? [])];

  let state: State = "new";
  let mode: Mode = "listen";
  let parts: Parts | undefined;
  let starting: Promise<void> | undefined;
  let stopping: Promise<void> | undefined;
  let stopRequested = false;
  /** A second stop with no grace (a second Ctrl-C): ends the first one's waits, whenever it comes. */
  const cut = new Cut();
  const slots = new SlotWaiters(clock);

  const fail = (during: string) => (error: unknown) => {
    logger.error(`${during} failed: ${errorText(error)}`);
    events.emit("worker:error", { workerId: id, error, during });
  };

  const build = () =>
    buildParts({
      opts, id, schema, queues, concurrency, staleAfterMs, logger, clock, dbNow, tasks, events, stats, fail, middleware,
      slotFreed: () => slots.wake(),
      claimsOpen: (lease) => state === "running" && !lease.reregistering && !lease.inDoubt,
      driven: () => mode === "available",
    });

  async function boot(bootMode: Mode): Promise<void> {
    mode = bootMode;
    const p = (parts = build());
    let registered = false;
    let announced = false;
    try {
      // A database that is down (or full) at start is waited for, with backoff.
      const recovered = await retryTransient(
        async () => {
          for (const spec of opts.schedules ?? []) await upsertSchedule(p.db, spec, dbNow());
          const n = await p.lease.register();
          registered = true;
          if (mode === "listen" && p.listens) {
            await p.listener.start();
            await p.roster.runOnce();
            // The others read the roster again, so that notifications are drawn among this worker too.
            await p.announceRoster();
            announced = true;
          }
          await p.reaper.runOnce();
          return n;
        },
        { what: `worker ${id} starting`, logger, stopped: () => stopRequested },
      );
      if (stopRequested) throw new PgPulseError("INVALID_STATE", `worker ${id} was stopped before it started`);
      state = "running";
      // Heartbeats go on through a graceful stop: the jobs still running are leased.
      p.lease.start();
      if (mode === "listen") for (const service of p.maintenance) service.start();
      if (mode === "listen" && !p.listens) {
        logger.warn(
          `worker ${id} is polling for jobs, without LISTEN: pooler "transaction" and no listenConnection. ` +
            `It claims every ${p.claimer.sweepIntervalMs} ms, backing off to every ${p.claimer.sweepIntervalMaxMs} ms while idle; ` +
            `give listenConnection (a direct URL) to be woken as jobs arrive.`,
        );
      }
      logger.info(`worker ${id} started: queues ${queues.join(",")}, concurrency ${concurrency}, tasks ${taskNames.join(",")}`);
      events.emit("worker:started", { workerId: id, queues, concurrency, recovered });
      // What later reads of its queues' settings compare with (a polling worker's polls, a listening
      // one's LISTEN back after an outage), for pauses and tighter limits.
      if (mode === "listen") await p.queueWatch.check();
      await p.claimer.request("start");
    } catch (error) {
      state = "stopped";
      // Stopped (or failed) after it registered: its row goes, as a stop's would, and the others
      // that read it into their roster stop drawing it.
      if (registered && (await within(p.lease.unregister().then(() => {}, fail("unregistering")), STOP_IO_TIMEOUT_MS)) && announced) {
        await within(p.announceRoster(), STOP_IO_TIMEOUT_MS);
      }
      await closeDb(p, STOP_CANCEL_MS, clock);
      throw error;
    }
  }

  async function start(): Promise<void> {
    if (state !== "new") throw new PgPulseError("INVALID_STATE", `worker ${id} was already started`);
    state = "starting";
    starting = boot("listen");
    return starting;
  }

  async function runAvailable(runOptions: RunAvailableOptions = {}): Promise<RunAvailableSummary> {
    if (state !== "new") throw new PgPulseError("INVALID_STATE", `worker ${id} was already started`);
    const maxJobs = runOptions.maxJobs ?? Infinity;
    const deadlineMs = runOptions.deadlineMs ?? 60_000;
    if (!(maxJobs >= 1) || !(deadlineMs >= 0)) {
      throw new PgPulseError("INVALID_INPUT", "maxJobs must be at least 1 and deadlineMs at least 0", {
        details: [{ path: "maxJobs", message: "at least 1" }, { path: "deadlineMs", message: "at least 0" }],
      });
    }
    const began = Date.now();
    const deadline = began + deadlineMs;
    state = "starting";
    starting = boot("available");
    await starting;
    const { runner, claimer, lease, finisher } = parts!;
    let claimed = 0;
    while ((state as State) === "running" && claimed < maxJobs && Date.now() < deadline) {
      // As many ends run and not written as a worker may hold: write them before claiming more.
      if (finisher.unwritten >= UNWRITTEN_MAX) {
        await within(finisher.flush(), deadline - Date.now());
        continue;
      }
      const got = await claimer.claim("available", maxJobs - claimed);
      claimed += got;
      if (claimed >= maxJobs) break;
      if (got === 0 && runner.size === 0) {
        if (lease.inDoubt) {
          // Claims are closed until a heartbeat lands again: wait for that, not for a slot.
          await slots.waitFor(() => !lease.inDoubt, deadline - Date.now());
          continue;
        }
        // Jobs are runnable but a rate limit holds them back: wait for its next start if it
        // comes before the deadline, rather than end with them left. (A retry's backoff is
        // not waited for: runAvailable runs what is runnable now.)
        const wake = claimer.rateWakeInMs;
        if (wake === null || Date.now() + wake >= deadline) break;
        await slots.waitFor(() => false, wake);
        continue;
      }
      // No await between this check and the waiter's registration: a job that
      // settles in between cannot be missed.
      if (runner.size >= concurrency || got === 0) await slots.waitFor(() => true, deadline - Date.now());
    }
    await stop({ gracefulStopMs: Math.max(0, deadline - Date.now()) });
    return { ...stats, claimed, durationMs: Date.now() - began };
  }

  function stop(stopOptions: { gracefulStopMs?: number } = {}): Promise<void> {
    if (state === "new") {
      state = "stopped";
      return Promise.resolve();
    }
    stopRequested = true;
    // A second stop with no grace (a second Ctrl-C) cuts the first one's wait short.
    if (stopping && stopOptions.gracefulStopMs === 0) cut.cut();
    stopping ??= (async () => {
      await starting?.catch(() => {});
      if (state === "stopped") return;
      const p = parts!;
      state = "stopping";
      await stopParts(p, {
        clock, logger, fail, cut, slots,
        graceMs: stopOptions.gracefulStopMs ?? opts.gracefulStopMs ?? d.GRACEFUL_STOP_MS_DEFAULT,
        announces: mode === "listen" && p.listens,
        onStopped: () => (state = "stopped"),
      });
      logger.info(
        `worker ${id} stopped: ${stats.completed} completed, ${stats.failed} failed, ${stats.retried} retried, ` +
          `${stats.cancelled} cancelled, ${stats.released} released`,
      );
      events.emit("worker:stopped", { workerId: id, stats: { ...stats } });
    })();
    return stopping;
  }

  function notStarted(): never {
    throw new PgPulseError("INVALID_STATE", `worker ${id} is not running`);
  }

  const worker: Worker = {
    id,
    start,
    stop,
    runAvailable,
    use(mw: WorkerMiddleware) {
      if (typeof mw !== "function") throw new PgPulseError("INVALID_INPUT", "use() takes a middleware function (ctx, next) => ...");
      middleware.push(mw);
      return worker;
    },
    on: (event, handler) => events.on(event, handler),
    waitFor: (event, predicate, signal) => events.waitFor(event, predicate, signal),
    sweep: () => (state === "running" ? parts!.claimer.request("sweep") : Promise.resolve(0)),
    reap: (): Promise<ReapResult> => (state === "new" ? notStarted() : parts!.reaper.runOnce()),
    runSchedules: async () => {
      if (state === "new") notStarted();
      await parts!.scheduler.runOnce();
    },
    checkListener: () => (state === "new" ? notStarted() : parts!.listener.checkHealth()),
    get listening() {
      return state !== "new" && parts !== undefined && parts.listener.up;
    },
    get running() {
      return parts ? parts.runner.size : 0;
    },
    get stats() {
      return { ...stats };
    },
    [Symbol.asyncDispose]: () => stop(),
  };
  return worker;
}
