import * as v from "valibot";
import type postgres from "postgres";
import { backoffDelay } from "./backoff.ts";
import { claimJobs, claimSql } from "./claim.ts";
import { openSql, quoteSchema, SCHEMA_DEFAULT } from "./connection.ts";
import type { ClaimedJob, JobContext } from "./context.ts";
import { JobCancelledError, JobReleasedError, JobTimeoutError, PermanentError, PgPulseError } from "./errors.ts";
import { Emitter } from "./events.ts";
import { type ErrorRecord, FinishBatcher, type FinishResult, type Outcome } from "./finish.ts";
import { beat, heartbeatSql } from "./heartbeat.ts";
import { toJsonText } from "./json.ts";
import { type ControlMessage, Listener } from "./listener.ts";
import { consoleLogger, type Logger } from "./logger.ts";
import { ProgressWriter } from "./progress.ts";
import { type ReapResult, reapOnce, reaperSql } from "./reaper.ts";
import { isTaskDefinition, type ResolvedTask } from "./task.ts";
import * as d from "./worker-options.ts";
import type { JobStatus } from "./types.ts";

export type { WorkerOptions } from "./worker-options.ts";

/** What a worker reports. Subscribe with `worker.on(event, fn)`. */
export interface WorkerEvents {
  "worker:started": { workerId: string; queues: string[]; concurrency: number; recovered: number };
  "worker:stopped": { workerId: string; stats: WorkerStats };
  "worker:heartbeat": { workerId: string };
  /** The reaper declared this worker dead (a long pause, a partition); it re-registered. */
  "worker:lease-lost": { workerId: string };
  "worker:error": { workerId: string; error: unknown; during: string };
  "worker:claimed": { workerId: string; jobs: ClaimedJob[]; requested: number; reason: string };
  "job:started": { workerId: string; job: ClaimedJob };
  "job:completed": { workerId: string; job: ClaimedJob; result: unknown };
  /** The attempt failed and the job will run again after `delayMs`. */
  "job:retried": { workerId: string; job: ClaimedJob; error: ErrorRecord; delayMs: number };
  /** The job failed for good. */
  "job:failed": { workerId: string; job: ClaimedJob; error: ErrorRecord };
  "job:cancelled": { workerId: string; job: ClaimedJob };
  /** Given back to the queue unrun (graceful stop ran out of time, or the lease was lost). */
  "job:released": { workerId: string; job: ClaimedJob };
  "reaper:reaped": { workerId: string } & ReapResult;
  "listener:up": { workerId: string };
  "listener:down": { workerId: string; reason: string };
}

export interface WorkerStats {
  completed: number;
  failed: number;
  retried: number;
  cancelled: number;
  released: number;
}

export interface Worker {
  readonly id: string;
  /** Registers, recovers orphans, starts listening, and begins claiming. */
  start(): Promise<void>;
  /**
   * Stops claiming, waits up to `gracefulStopMs` for running jobs, gives the
   * rest back to the queue (attempt not counted), and removes the worker row.
   */
  stop(options?: { gracefulStopMs?: number }): Promise<void>;
  on<E extends keyof WorkerEvents>(event: E, handler: (payload: WorkerEvents[E]) => void): () => void;
  /** Resolves with the next `event` matching `predicate`; rejects when `signal` aborts. */
  waitFor<E extends keyof WorkerEvents>(
    event: E,
    predicate?: (payload: WorkerEvents[E]) => boolean,
    signal?: AbortSignal,
  ): Promise<WorkerEvents[E]>;
  /** Claims now, as the periodic sweep does. Resolves with the number of jobs claimed. */
  sweep(): Promise<number>;
  /** Runs one reaper pass now. */
  reap(): Promise<ReapResult>;
  /** Runs one listener health check now; false means the connection was replaced. */
  checkListener(): Promise<boolean>;
  /** Jobs running now. */
  readonly running: number;
  readonly stats: Readonly<WorkerStats>;
  [Symbol.asyncDispose](): Promise<void>;
}

interface Active {
  job: ClaimedJob;
  controller: AbortController;
  timer?: ReturnType<typeof setTimeout>;
  settled: boolean;
}

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
  const gracefulStopMs = opts.gracefulStopMs ?? d.GRACEFUL_STOP_MS_DEFAULT;
  const staleAfterMs = opts.staleAfterMs ?? d.STALE_AFTER_MS_DEFAULT;
  const logger: Logger =
    typeof opts.logger === "object" ? opts.logger : consoleLogger(id, opts.logger ?? "info");
  const clock = opts.clock;
  const now = () => (clock ? clock() : null);

  const tasks = new Map<string, ResolvedTask>();
  for (const [name, entry] of Object.entries(opts.tasks)) {
    if (isTaskDefinition(entry)) {
      if (entry.name !== undefined && entry.name !== name) {
        throw new PgPulseError("INVALID_INPUT", `tasks.${name} holds the definition of task "${entry.name}"`, {
          details: [{ path: `tasks.${name}`, message: `definition is named "${entry.name}"` }],
        });
      }
      const { handler, schema: payloadSchema, ...settings } = entry;
      tasks.set(name, { name, handler, ...(payloadSchema ? { schema: payloadSchema } : {}), settings });
    } else {
      tasks.set(name, { name, handler: entry, settings: {} });
    }
  }
  const taskNames = [...tasks.keys()];

  const events = new Emitter<WorkerEvents>((error, event) =>
    logger.error(`an event handler for ${String(event)} threw`, { error: String(error) }),
  );
  const stats: WorkerStats = { completed: 0, failed: 0, retried: 0, cancelled: 0, released: 0 };
  const active = new Map<string, Active>();
  const claimText = claimSql(q);
  const hb = heartbeatSql(q);
  const reaperText = reaperSql(q);

  let sql: postgres.Sql;
  let owned = false;
  let finisher: FinishBatcher;
  let progress: ProgressWriter;
  let listener: Listener;
  let state: "new" | "starting" | "running" | "stopping" | "stopped" = "new";
  let starting: Promise<void> | undefined;
  let stopping: Promise<void> | undefined;
  const idleWaiters = new Set<() => void>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  let wakeAt = Infinity;
  let wakeTimer: ReturnType<typeof setTimeout> | undefined;

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

  function every(ms: number, fn: () => Promise<unknown>) {
    const tick = () => {
      const t = setTimeout(async () => {
        timers.delete(t);
        if (state !== "running") return;
        await fn().catch(fail("a background task"));
        if (state === "running") tick();
      }, ms);
      timers.add(t);
    };
    tick();
  }

  function requestClaim(reason: string): Promise<number> {
    if (state !== "running") return Promise.resolve(0);
    if (claiming) {
      claimAgain = true;
      return claiming;
    }
    claiming = claim(reason).finally(() => {
      claiming = undefined;
      if (claimAgain && state === "running") {
        claimAgain = false;
        if (active.size < concurrency) void requestClaim("again");
      }
    });
    return claiming;
  }

  async function claim(reason: string): Promise<number> {
    const free = concurrency - active.size;
    if (free <= 0) {
      more = true;
      return 0;
    }
    let jobs: ClaimedJob[];
    try {
      jobs = await claimJobs(sql, claimText, { queues, tasks: taskNames, limit: free, workerId: id, now: now() });
    } catch (error) {
      fail("claiming jobs")(error);
      return 0;
    }
    more = jobs.length === free;
    events.emit("worker:claimed", { workerId: id, jobs, requested: free, reason });
    for (const job of jobs) run(job);
    return jobs.length;
  }

  function wakeIn(ms: number) {
    const at = Date.now() + ms;
    if (at >= wakeAt) return;
    wakeAt = at;
    clearTimeout(wakeTimer);
    wakeTimer = setTimeout(() => {
      wakeAt = Infinity;
      void requestClaim("timer");
    }, ms);
  }

  function run(job: ClaimedJob) {
    const task = tasks.get(job.task)!;
    const entry: Active = { job, controller: new AbortController(), settled: false };
    active.set(job.id, entry);
    const timeoutMs = job.timeoutMs ?? task.settings.timeoutMs ?? opts.timeoutMs;
    if (timeoutMs !== undefined && timeoutMs !== null) {
      entry.timer = setTimeout(() => {
        const error = new JobTimeoutError(timeoutMs);
        entry.controller.abort(error);
        failAttempt(entry, task, error);
      }, timeoutMs);
    }
    const ctx: JobContext = {
      job,
      signal: entry.controller.signal,
      workerId: id,
      logger,
      progress(percent: number) {
        if (entry.settled) return;
        if (typeof percent !== "number" || !Number.isFinite(percent)) {
          throw new PgPulseError("INVALID_INPUT", `progress must be a number from 0 to 100, got ${String(percent)}`);
        }
        progress.set(job.id, job.attempt, Math.round(Math.min(100, Math.max(0, percent))));
      },
    };
    events.emit("job:started", { workerId: id, job });
    void execute(entry, task, ctx);
  }

  async function execute(entry: Active, task: ResolvedTask, ctx: JobContext) {
    try {
      let payload = entry.job.payload;
      if (task.schema) {
        const checked = await v.safeParseAsync(task.schema, payload);
        if (!checked.success) {
          const what = checked.issues.map((i) => `${v.getDotPath(i) ?? "payload"}: ${i.message}`).join("; ");
          throw new PermanentError(`payload does not match the task's schema: ${what}`);
        }
        payload = checked.output;
      }
      const result = await task.handler(payload, ctx);
      if (entry.settled) return;
      let stored: unknown = null;
      if (result !== undefined) {
        try {
          stored = JSON.parse(toJsonText(result, "result"));
        } catch (error) {
          throw new PermanentError(`the handler returned a result that cannot be stored: ${errorText(error)}`);
        }
      }
      settle(entry, { kind: "completed", id: entry.job.id, attempt: entry.job.attempt, result: stored });
    } catch (error) {
      if (entry.settled) return;
      failAttempt(entry, task, error);
    }
  }

  function failAttempt(entry: Active, task: ResolvedTask, error: unknown) {
    if (entry.settled) return;
    const { job } = entry;
    const record = errorRecord(error, job.attempt, id);
    if (error instanceof JobCancelledError) {
      return settle(entry, { kind: "cancelled", id: job.id, attempt: job.attempt, error: record });
    }
    if (error instanceof PermanentError || job.attempt >= job.maxAttempts) {
      return settle(entry, { kind: "failed", id: job.id, attempt: job.attempt, error: record });
    }
    const delayMs = backoffDelay(job.attempt, task.settings.backoff ?? opts.backoff);
    settle(entry, { kind: "retry", id: job.id, attempt: job.attempt, error: record, delayMs });
  }

  function settle(entry: Active, outcome: Outcome) {
    if (entry.settled) return;
    entry.settled = true;
    clearTimeout(entry.timer);
    active.delete(entry.job.id);
    progress.forget(entry.job.id);
    if (active.size === 0) for (const wake of idleWaiters) wake();
    void finisher.add(outcome).then((result) => {
      report(entry.job, outcome, result);
      if (more && state === "running") void requestClaim("slots freed");
    });
  }

  function report(job: ClaimedJob, outcome: Outcome, result: FinishResult) {
    if (!result.applied) {
      logger.warn(`job ${job.id} was no longer this worker's when it ended (${outcome.kind}); its outcome was dropped`);
      return;
    }
    const status = result.status as JobStatus;
    const base = { workerId: id, job };
    if (status === "completed") {
      stats.completed++;
      events.emit("job:completed", { ...base, result: outcome.kind === "completed" ? outcome.result : null });
    } else if (status === "cancelled") {
      stats.cancelled++;
      events.emit("job:cancelled", base);
    } else if (status === "failed" && "error" in outcome) {
      stats.failed++;
      logger.warn(`job ${job.id} (${job.task}) failed for good: ${outcome.error.message}`);
      events.emit("job:failed", { ...base, error: outcome.error });
    } else if (outcome.kind === "retry") {
      stats.retried++;
      logger.debug(`job ${job.id} (${job.task}) attempt ${job.attempt} failed, retrying in ${outcome.delayMs} ms`);
      wakeIn(outcome.delayMs);
      events.emit("job:retried", { ...base, error: outcome.error, delayMs: outcome.delayMs });
    } else if (outcome.kind === "released") {
      stats.released++;
      events.emit("job:released", base);
    }
  }

  function release(reason: string) {
    for (const entry of [...active.values()]) {
      entry.controller.abort(new JobReleasedError(reason));
      settle(entry, { kind: "released", id: entry.job.id, attempt: entry.job.attempt });
    }
  }

  function onControl(message: ControlMessage) {
    if (message.type !== "cancel") return;
    cancelLocal(message.job);
  }

  function cancelLocal(jobId: string) {
    const entry = active.get(jobId);
    if (!entry || entry.settled) return;
    const error = new JobCancelledError();
    entry.controller.abort(error);
    failAttempt(entry, tasks.get(entry.job.task)!, error);
  }

  async function heartbeat() {
    const result = await beat(sql, hb.beat, id, now());
    if (result === null) {
      logger.warn("the reaper declared this worker dead (heartbeat too old); giving back its jobs and registering again");
      events.emit("worker:lease-lost", { workerId: id });
      release("lease lost");
      await register();
      void requestClaim("registered again");
      return;
    }
    for (const jobId of result.cancel) cancelLocal(jobId);
    events.emit("worker:heartbeat", { workerId: id });
  }

  async function register(): Promise<number> {
    const [row] = await sql.unsafe(
      hb.register,
      [id, queues, taskNames, concurrency, JSON.stringify(opts.meta ?? {}), now()],
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

  function start(): Promise<void> {
    if (state !== "new") throw new PgPulseError("INVALID_STATE", `worker ${id} was already started`);
    state = "starting";
    starting = boot();
    return starting;
  }

  async function boot() {
    ({ sql, owned } = openSql(opts.connection, { applicationName: `pgpulse worker ${id}`.slice(0, 63), max: 4 }));
    finisher = new FinishBatcher(
      sql, q, schema, id, opts.finishBatchMs ?? d.FINISH_BATCH_MS_DEFAULT, now,
      (error, wait) => logger.warn(`writing finished jobs failed, retrying in ${wait} ms: ${errorText(error)}`),
    );
    progress = new ProgressWriter(sql, q, id, opts.progressIntervalMs ?? d.PROGRESS_INTERVAL_MS_DEFAULT, fail("writing progress"));
    listener = new Listener({
      pool: sql,
      schema,
      workerId: id,
      healthIntervalMs: opts.listenerHealthIntervalMs ?? d.LISTENER_HEALTH_INTERVAL_MS_DEFAULT,
      healthTimeoutMs: opts.listenerHealthTimeoutMs ?? d.LISTENER_HEALTH_TIMEOUT_MS_DEFAULT,
      onEnqueued(names) {
        if (!names.some((name) => queues.includes(name))) return;
        if (active.size >= concurrency) more = true;
        else void requestClaim("notify");
      },
      onControl,
      onUp() {
        events.emit("listener:up", { workerId: id });
        // Anything enqueued while LISTEN was not in place went unheard.
        if (state === "running") void requestClaim("listener up");
      },
      onDown(reason) {
        logger.warn(`LISTEN connection lost: ${reason}; replacing it`);
        events.emit("listener:down", { workerId: id, reason });
      },
    });
    try {
      const recovered = await register();
      await listener.start();
      await reap();
      state = "running";
      every(opts.heartbeatIntervalMs ?? d.HEARTBEAT_INTERVAL_MS_DEFAULT, heartbeat);
      every(opts.reaperIntervalMs ?? d.REAPER_INTERVAL_MS_DEFAULT, reap);
      every(opts.pollIntervalMs ?? d.POLL_INTERVAL_MS_DEFAULT, () => requestClaim("sweep"));
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

  function stop(stopOptions: { gracefulStopMs?: number } = {}): Promise<void> {
    if (state === "new") {
      state = "stopped";
      return Promise.resolve();
    }
    stopping ??= (async () => {
      await starting?.catch(() => {});
      if (state === "stopped") return;
      state = "stopping";
      for (const t of timers) clearTimeout(t);
      timers.clear();
      clearTimeout(wakeTimer);
      await listener.stop();
      await claiming;
      const grace = stopOptions.gracefulStopMs ?? gracefulStopMs;
      if (active.size > 0) {
        logger.info(`stopping: waiting up to ${grace} ms for ${active.size} running job(s)`);
        await waitUntilIdle(grace);
      }
      release("worker stopping");
      await progress.flush();
      progress.stop();
      await finisher.flush();
      try {
        await sql.unsafe(hb.unregister, [id, now(), schema], { prepare: true });
      } catch (error) {
        fail("unregistering")(error);
      }
      if (owned) await sql.end({ timeout: 5 });
      state = "stopped";
      logger.info(
        `worker ${id} stopped: ${stats.completed} completed, ${stats.failed} failed, ${stats.retried} retried, ` +
          `${stats.cancelled} cancelled, ${stats.released} released`,
      );
      events.emit("worker:stopped", { workerId: id, stats: { ...stats } });
    })();
    return stopping;
  }

  function waitUntilIdle(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        idleWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      idleWaiters.add(done);
      if (active.size === 0) done();
    });
  }

  return {
    id,
    start,
    stop,
    on: (event, handler) => events.on(event, handler),
    waitFor: (event, predicate, signal) => events.waitFor(event, predicate, signal),
    sweep: () => requestClaim("sweep"),
    reap: () => reap(),
    checkListener: () => listener.checkHealth(),
    get running() {
      return active.size;
    },
    get stats() {
      return { ...stats };
    },
    [Symbol.asyncDispose]: () => stop(),
  };
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** What gets stored for a failed attempt, whatever the handler threw. */
export function errorRecord(error: unknown, attempt: number, worker: string): ErrorRecord {
  if (error instanceof Error) {
    return { attempt, name: error.name, message: error.message, ...(error.stack ? { stack: error.stack } : {}), worker };
  }
  let message: string;
  try {
    message = typeof error === "string" ? error : (JSON.stringify(error) ?? String(error));
  } catch {
    message = String(error);
  }
  return { attempt, name: typeof error === "object" && error !== null ? "NonErrorObject" : `Thrown${typeof error}`, message, worker };
}
