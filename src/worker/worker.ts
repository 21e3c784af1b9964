import type postgres from "postgres";
import { claimJobs, claimSql } from "../db/claim.ts";
import { openSql, quoteSchema, SCHEMA_DEFAULT } from "../db/connection.ts";
import type { ClaimedJob } from "./context.ts";
import { errorText } from "../shared/error-record.ts";
import { PgPulseError } from "../shared/errors.ts";
import { Emitter } from "../shared/events.ts";
import { FinishBatcher } from "./finisher.ts";
import { beat, heartbeatSql } from "../db/lease.ts";
import { JobRunner } from "./runner.ts";
import { Listener } from "./listener.ts";
import { consoleLogger, type Logger } from "../shared/logger.ts";
import { ProgressWriter } from "./progress.ts";
import { prune, pruneSql } from "../maintenance/pruner.ts";
import { type ReapResult, reapOnce, reaperSql } from "../maintenance/reaper.ts";
import { retryTransient } from "../shared/retry.ts";
import { runDueSchedules, schedulesSql, upsertSchedule } from "../producer/schedules.ts";
import { vacuumIfNeeded, vacuumSql } from "../maintenance/vacuum.ts";
import { resolveTasks } from "../shared/task.ts";
import { loop, timeLimit, within } from "../shared/timing.ts";
import * as d from "./options.ts";
import type { RunAvailableOptions, RunAvailableSummary, Worker, WorkerEvents, WorkerStats } from "./types.ts";

export type { WorkerOptions } from "./options.ts";
export type { RunAvailableOptions, RunAvailableSummary, Worker, WorkerEvents, WorkerStats } from "./types.ts";

/**
 * How long stop() waits on the database for each of its last writes (an
 * in-flight claim, finished jobs, unregistering). If the database is gone, what
 * is left is the reaper's: the worker row goes stale and its jobs come back.
 */
const STOP_IO_TIMEOUT_MS = 5000;

/** A job claimed ahead that has waited this long for a slot goes back to the queue. */
const WAITING_MAX_MS = 5000;

type State = "new" | "starting" | "running" | "stopping" | "stopped";

/**
 * Creates a worker: claims jobs from its queues and runs their tasks,
 * `concurrency` at a time.
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
  const q = quoteSchema(schema);
  const id = opts.id ?? `w-${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const queues = opts.queues ?? ["default"];
  const concurrency = opts.concurrency ?? d.CONCURRENCY_DEFAULT;
  const staleAfterMs = opts.staleAfterMs ?? d.STALE_AFTER_MS_DEFAULT;
  const logger: Logger = typeof opts.logger === "object" ? opts.logger : consoleLogger(id, opts.logger ?? "info");
  const clock = opts.clock;
  const now = () => (clock ? clock() : null);
  const tasks = resolveTasks(opts.tasks);
  const taskNames = [...tasks.keys()];

  const events = new Emitter<WorkerEvents>((error, event) =>
    logger.error(`an event handler for ${String(event)} threw`, { error: String(error) }),
  );
  const stats: WorkerStats = { completed: 0, failed: 0, retried: 0, cancelled: 0, released: 0, snoozed: 0 };
  const claimText = claimSql(q);
  const hb = heartbeatSql(q);
  const reaperText = reaperSql(q);
  const scheduleText = schedulesSql(q);
  const pruneText = pruneSql(q);
  const vacuumText = vacuumSql(q);

  let sql: postgres.Sql;
  let owned = false;
  let finisher: FinishBatcher;
  let progress: ProgressWriter;
  let listener: Listener;
  let runner: JobRunner;
  let state: State = "new";
  let mode: "listen" | "available" = "listen";
  let starting: Promise<void> | undefined;
  let stopping: Promise<void> | undefined;
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const slotWaiters = new Set<() => void>();
  let wakeAt = Infinity;
  let wakeTimer: ReturnType<typeof setTimeout> | undefined;
  // When this worker's own heartbeat last failed: after an outage every
  // heartbeat is stale, so the reaper holds off until workers could beat again.
  let beatFailedAt = -Infinity;
  let lastBeatOkAt = Date.now();
  const heartbeatIntervalMs = opts.heartbeatIntervalMs ?? d.HEARTBEAT_INTERVAL_MS_DEFAULT;
  const leaseMarginMs = Math.max(staleAfterMs - 2 * heartbeatIntervalMs, staleAfterMs / 2);
  let reregistering = false;
  /** "id:attempt" of jobs the last heartbeat showed running here that this worker does not hold. */
  let strays = new Set<string>();
  let cutGrace: (() => void) | undefined;
  let stopRequested = false;

  // Claim coordination: one claim in flight; requests meanwhile fold into one more.
  let claiming: Promise<number> | undefined;
  let claimAgain = false;
  // The last claim filled every free slot, or a notification came while full:
  // there may be more waiting, so claim again as slots free up.
  let more = false;

  const fail = (during: string) => (error: unknown) => {
    logger.error(`${during} failed: ${errorText(error)}`);
    events.emit("worker:error", { workerId: id, error, during });
  };

  const every = (ms: number, fn: () => Promise<unknown>, alive = () => state === "running") =>
    loop(ms, fn, alive, timers, fail("a background task"));

  function requestClaim(reason: string): Promise<number> {
    // In runAvailable, that loop alone decides what to claim.
    if (state !== "running" || mode === "available" || reregistering) return Promise.resolve(0);
    if (claiming) {
      claimAgain = true;
      return claiming;
    }
    claiming = claim(reason).finally(() => {
      claiming = undefined;
      if (claimAgain && state === "running") {
        claimAgain = false;
        if (runner.size + runner.waiting.size < concurrency) void requestClaim("again");
      }
    });
    return claiming;
  }

  async function claim(reason: string, cap = Infinity): Promise<number> {
    // With a backlog (the last claim came back full), claim a little ahead of
    // the free slots, so slots never wait on a round trip.
    const ahead = more && mode === "listen" ? runner.prefetch() : 0;
    const free = Math.min(concurrency + ahead - runner.size - runner.waiting.size, cap);
    if (free <= 0) {
      more = true;
      return 0;
    }
    let jobs: ClaimedJob[];
    let unstarted: Map<string, number>;
    try {
      const slots = Math.max(0, concurrency - runner.size - runner.waiting.size);
      const claimed = await claimJobs(sql, claimText, { queues, tasks: taskNames, limit: free, ahead: free - Math.min(free, slots), workerId: id, now: now() });
      jobs = claimed.jobs;
      unstarted = claimed.unstarted;
      if (claimed.wakeMs !== null) wakeIn(claimed.wakeMs);
    } catch (error) {
      // If the claim committed but its reply was lost, the heartbeat's
      // reconciliation finds those jobs and gives them back.
      fail("claiming jobs")(error);
      return 0;
    }
    if (state !== "running" || reregistering) {
      // The worker began to stop (or lost its lease) while this claim was out.
      runner.giveBack(jobs);
      return 0;
    }
    more = jobs.length === free;
    events.emit("worker:claimed", { workerId: id, jobs, requested: free, reason });
    runner.accept(jobs, unstarted);
    return jobs.length;
  }

  function wakeIn(ms: number) {
    const at = Date.now() + ms;
    if (state !== "running" || at >= wakeAt) return;
    wakeAt = at;
    clearTimeout(wakeTimer);
    wakeTimer = setTimeout(() => {
      wakeAt = Infinity;
      void requestClaim("timer");
    }, ms);
  }

  async function heartbeat() {
    const claimInFlight = claiming !== undefined;
    const sentAt = Date.now();
    const call = beat(sql, hb.beat, id, now());
    // A beat that answers late still refreshed the lease, from when it was sent.
    void call.then((r) => r !== null && (lastBeatOkAt = Math.max(lastBeatOkAt, sentAt)), () => {});
    let result: Awaited<ReturnType<typeof beat>>;
    try {
      // A heartbeat that does not come back (a silent network) must not stall the loop.
      result = await timeLimit(call, Math.max(1, heartbeatIntervalMs / 2), "heartbeat");
    } catch (error) {
      beatFailedAt = Date.now();
      // Others count this worker dead staleAfterMs after its last beat reached the database;
      // give the jobs up two heartbeats before that (this loop may be that late to look), so
      // they never run in two places.
      if (Date.now() - lastBeatOkAt > leaseMarginMs && runner.size + runner.waiting.size > 0) {
        logger.warn(`no heartbeat has reached the database for ${Date.now() - lastBeatOkAt} ms; giving up the running jobs, which other workers may take`);
        runner.releaseAll("lease expired");
      }
      throw error;
    }
    if (result === null) return leaseLost();
    for (const jobId of result.cancel) runner.cancel(jobId);
    if (!claimInFlight && claiming === undefined) reconcile(result.running);
    events.emit("worker:heartbeat", { workerId: id });
  }

  /**
   * Jobs the database says this worker runs, but that it does not: a claim
   * that committed while its reply was lost. They go back to the queue unrun.
   * A job counts only when two heartbeats in a row show it so: one snapshot
   * can predate the write of a job that ended just then. Each release is also
   * guarded by the attempt, so a job that ended meanwhile is left alone.
   */
  function reconcile(running: string[]) {
    const seen = new Set<string>();
    for (const pair of running) {
      const jobId = pair.slice(0, pair.indexOf(":"));
      if (runner.holds(jobId)) continue;
      seen.add(pair);
      if (!strays.has(pair)) continue;
      logger.warn(`job ${jobId} is marked running on this worker, which is not running it; giving it back`);
      runner.releaseStray(jobId, Number(pair.slice(pair.indexOf(":") + 1)));
    }
    strays = seen;
  }

  async function leaseLost() {
    logger.warn("the reaper declared this worker dead (heartbeat too old); giving back its jobs and registering again");
    reregistering = true;
    try {
      await claiming;
      runner.releaseAll("lease lost");
      events.emit("worker:lease-lost", { workerId: id });
      await register();
    } finally {
      reregistering = false;
    }
    void requestClaim("registered again");
  }

  async function register(): Promise<number> {
    const [row] = await sql.unsafe(
      hb.register,
      [id, JSON.stringify(queues), JSON.stringify(taskNames), concurrency, JSON.stringify(opts.meta ?? {}), now()],
      { prepare: true },
    );
    return row!.recovered as number;
  }

  async function reap(): Promise<ReapResult> {
    const result = await reapOnce(sql, reaperText, { schema, staleAfterMs, now: now() });
    if (result.workers.length > 0 || result.jobs.length > 0) {
      logger.info(`reaper: ${result.workers.length} dead worker(s), ${result.jobs.length} job(s) taken back`, {
        workers: result.workers,
      });
      events.emit("reaper:reaped", { workerId: id, ...result });
    }
    return result;
  }

  async function runSchedules() {
    for (const { name, ticks } of await runDueSchedules(sql, scheduleText, now())) {
      logger.debug(`schedule ${name}: enqueued ${ticks.length} job(s)`);
      events.emit("schedule:enqueued", { workerId: id, name, ticks });
    }
  }

  /** Prunes finished jobs past retention, and vacuums the jobs table if autovacuum will not. */
  async function maintain() {
    const deleted = opts.retention === false ? 0 : await prune(sql, pruneText, schema, opts.retention ?? {}, now());
    if (deleted > 0) logger.info(`pruned ${deleted} finished job(s) past retention`);
    if (deleted > 0) events.emit("jobs:pruned", { workerId: id, deleted });
    const intervalMs = opts.pruneIntervalMs ?? d.PRUNE_INTERVAL_MS_DEFAULT;
    if (await vacuumIfNeeded(sql, vacuumText, intervalMs / 2)) events.emit("jobs:vacuumed", { workerId: id });
  }

  async function periodicReap() {
    if (Date.now() - beatFailedAt < staleAfterMs) return;
    await reap();
  }

  /**
   * "listen": the long-running worker. "available": no LISTEN, no sweep and no
   * reaper loop (the reaper runs once here); runAvailable drives the claims.
   */
  async function boot(bootMode: "listen" | "available") {
    mode = bootMode;
    ({ sql, owned } = openSql(opts.connection, { applicationName: `pgpulse worker ${id}`.slice(0, 63), max: 4 }));
    finisher = new FinishBatcher(
      sql, q, schema, id, opts.finishBatchMs ?? d.FINISH_BATCH_MS_DEFAULT, now,
      (error, wait) => logger.warn(`writing finished jobs failed, retrying in ${wait} ms: ${errorText(error)}`),
    );
    const progressMs = opts.progressIntervalMs ?? d.PROGRESS_INTERVAL_MS_DEFAULT;
    progress = new ProgressWriter(sql, q, id, progressMs, opts.finishBatchMs ?? d.FINISH_BATCH_MS_DEFAULT, fail("writing progress"));
    runner = new JobRunner({
      workerId: id, concurrency, tasks, logger, events, stats, finisher, progress,
      ...(opts.backoff ? { backoff: opts.backoff } : {}),
      ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
      onSlotFree() {
        slotWaiters.forEach((wake) => wake());
        // Claim again as soon as the backlog runs low, without waiting for the finish write.
        if (more && runner.waiting.size <= runner.prefetch() / 2) void requestClaim("slots freed");
        // Nothing left to overlap with: write what has finished now rather than after the batch window.
        if (runner.size === 0 && runner.waiting.size === 0) void finisher.flush();
      },
      onWritten(outcome, result) {
        if ((outcome.kind === "retry" || outcome.kind === "snoozed") && result.status === "queued") wakeIn(outcome.delayMs);
        if (more) void requestClaim("slots freed");
      },
    });
    listener = new Listener({
      pool: sql,
      schema,
      workerId: id,
      healthIntervalMs: opts.listenerHealthIntervalMs ?? d.LISTENER_HEALTH_INTERVAL_MS_DEFAULT,
      healthTimeoutMs: opts.listenerHealthTimeoutMs ?? d.LISTENER_HEALTH_TIMEOUT_MS_DEFAULT,
      onEnqueued(names) {
        if (!names.some((name) => queues.includes(name))) return;
        if (runner.size >= concurrency) more = true;
        else void requestClaim("notify");
      },
      onControl: (message) => message.type === "cancel" && runner.cancel(message.job),
      onUp() {
        events.emit("listener:up", { workerId: id });
        // Anything enqueued while LISTEN was not in place went unheard.
        void requestClaim("listener up");
      },
      onDown(reason) {
        logger.warn(`LISTEN connection lost: ${reason}; replacing it`);
        events.emit("listener:down", { workerId: id, reason });
      },
    });
    try {
      // A database that is down (or full) at start is waited for, with backoff.
      const recovered = await retryTransient(
        async () => {
          for (const spec of opts.schedules ?? []) await upsertSchedule(sql, scheduleText, spec, now());
          const n = await register();
          if (mode === "listen") await listener.start();
          await reap();
          return n;
        },
        { what: `worker ${id} starting`, logger, stopped: () => stopRequested },
      );
      if (stopRequested) throw new PgPulseError("INVALID_STATE", `worker ${id} was stopped before it started`);
      state = "running";
      // Heartbeats go on through a graceful stop: the jobs still running are leased.
      lastBeatOkAt = Date.now();
      every(heartbeatIntervalMs, heartbeat, () => state === "running" || state === "stopping");
      if (mode === "listen") {
        every(opts.reaperIntervalMs ?? d.REAPER_INTERVAL_MS_DEFAULT, periodicReap);
        every(opts.pollIntervalMs ?? d.POLL_INTERVAL_MS_DEFAULT, async () => {
          // Jobs claimed ahead should start within moments; if runs got slower, give them back.
          const released = runner.releaseWaitingOlderThan(WAITING_MAX_MS);
          if (released > 0) logger.debug(`gave back ${released} job(s) that waited too long for a slot`);
          return requestClaim("sweep");
        });
        every(opts.scheduleIntervalMs ?? d.SCHEDULE_INTERVAL_MS_DEFAULT, runSchedules);
        every(opts.pruneIntervalMs ?? d.PRUNE_INTERVAL_MS_DEFAULT, maintain);
      }
      logger.info(`worker ${id} started: queues ${queues.join(",")}, concurrency ${concurrency}, tasks ${taskNames.join(",")}`);
      events.emit("worker:started", { workerId: id, queues, concurrency, recovered });
      await requestClaim("start");
    } catch (error) {
      state = "stopped";
      await listener.stop();
      if (owned) await sql.end({ timeout: 1 });
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
    let claimed = 0;
    while ((state as State) === "running" && claimed < maxJobs && Date.now() < deadline) {
      const got = await claim("available", maxJobs - claimed);
      claimed += got;
      if ((got === 0 && runner.size === 0) || claimed >= maxJobs) break;
      // No await between this check and the waiter's registration: a job that
      // settles in between cannot be missed.
      if (runner.size >= concurrency || got === 0) await waitFor(() => true, deadline - Date.now());
    }
    await stop({ gracefulStopMs: Math.max(0, deadline - Date.now()) });
    return { ...stats, claimed, durationMs: Date.now() - began };
  }

  /** Resolves when a slot frees and done() holds, or after ms. */
  function waitFor(done: () => boolean, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const finish = () => {
        if (!done()) return;
        clearTimeout(timer);
        slotWaiters.delete(finish);
        resolve();
      };
      const timer = setTimeout(() => (slotWaiters.delete(finish), resolve()), Math.max(0, ms));
      slotWaiters.add(finish);
    });
  }

  function stop(stopOptions: { gracefulStopMs?: number } = {}): Promise<void> {
    if (state === "new") {
      state = "stopped";
      return Promise.resolve();
    }
    stopRequested = true;
    // A second stop with no grace (a second Ctrl-C) cuts the first one's wait short.
    if (stopping && stopOptions.gracefulStopMs === 0) cutGrace?.();
    stopping ??= (async () => {
      await starting?.catch(() => {});
      if (state === "stopped") return;
      // Claiming, the sweep and the reaper end here; heartbeats and the listener
      // (for cancels) go on while running jobs finish.
      state = "stopping";
      runner.closed = true;
      runner.releaseWaiting();
      clearTimeout(wakeTimer);
      wakeAt = Infinity;
      await within(claiming, STOP_IO_TIMEOUT_MS);
      const grace = stopOptions.gracefulStopMs ?? opts.gracefulStopMs ?? d.GRACEFUL_STOP_MS_DEFAULT;
      if (runner.size > 0) {
        logger.info(`stopping: waiting up to ${grace} ms for ${runner.size} running job(s)`);
        await Promise.race([waitFor(() => runner.size === 0, grace), new Promise<void>((r) => (cutGrace = r))]);
        cutGrace = undefined;
      }
      runner.releaseAll("worker stopping");
      // One budget for the last writes, so a database that is gone cannot hold stop() up.
      const ioDeadline = Date.now() + STOP_IO_TIMEOUT_MS;
      const left = () => Math.max(0, ioDeadline - Date.now());
      await within(progress.flush(), left());
      progress.stop();
      if (!(await within(finisher.flush(), left()))) {
        logger.warn("could not write the last finished jobs; the reaper will put them back");
        finisher.abandon();
      }
      state = "stopped";
      for (const t of timers) clearTimeout(t);
      timers.clear();
      await listener.stop();
      const unregister = sql.unsafe(hb.unregister, [id, now(), schema], { prepare: true });
      if (!(await within(unregister.then(() => {}, fail("unregistering")), left()))) {
        logger.warn("could not remove this worker's row; the reaper will");
      }
      if (owned) await sql.end({ timeout: Math.ceil(left() / 1000) });
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

  return {
    id,
    start,
    stop,
    runAvailable,
    on: (event, handler) => events.on(event, handler),
    waitFor: (event, predicate, signal) => events.waitFor(event, predicate, signal),
    sweep: () => (state === "running" ? requestClaim("sweep") : Promise.resolve(0)),
    reap: () => (state === "new" ? notStarted() : reap()),
    runSchedules: () => (state === "new" ? notStarted() : runSchedules()),
    checkListener: () => (state === "new" ? notStarted() : listener.checkHealth()),
    get listening() {
      return state !== "new" && listener.up;
    },
    get running() {
      return runner ? runner.size : 0;
    },
    get stats() {
      return { ...stats };
    },
    [Symbol.asyncDispose]: () => stop(),
  };
}
