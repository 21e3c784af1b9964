import * as v from "valibot";
import type { BackoffOptions } from "./backoff.ts";
import { checkPoolOptions, type Connection, type Pooler } from "../db/connection.ts";
import { INT4_MAX, int, parseOrThrow, span } from "../producer/enqueue-options.ts";
import type { Logger, LogLevel } from "../shared/logger.ts";
import type { RetentionOptions } from "../maintenance/pruner.ts";
import type { ScheduleSpec } from "../producer/schedules.ts";
import type { TaskMap } from "../shared/task.ts";
import type { WorkerMiddleware } from "./context.ts";

export const CONCURRENCY_DEFAULT = 10;
export const POLL_INTERVAL_MS_DEFAULT = 2000;
/** Without LISTEN, an idle worker polls less and less often, up to this. */
export const POLL_INTERVAL_MAX_MS_DEFAULT = 10_000;
export const HEARTBEAT_INTERVAL_MS_DEFAULT = 5000;
export const STALE_AFTER_MS_DEFAULT = 30_000;
export const REAPER_INTERVAL_MS_DEFAULT = 5000;
export const GRACEFUL_STOP_MS_DEFAULT = 10_000;
export const LISTENER_HEALTH_INTERVAL_MS_DEFAULT = 10_000;
export const LISTENER_HEALTH_TIMEOUT_MS_DEFAULT = 5000;
export const FINISH_BATCH_MS_DEFAULT = 2;
export const PROGRESS_INTERVAL_MS_DEFAULT = 500;
export const LOG_INTERVAL_MS_DEFAULT = 200;
export const LOG_MAX_LINES_DEFAULT = 1000;
export const LOG_MAX_BYTES_DEFAULT = 65_536;
export const SCHEDULE_INTERVAL_MS_DEFAULT = 1000;
export const PRUNE_INTERVAL_MS_DEFAULT = 60_000;
export const STATS_INTERVAL_MS_DEFAULT = 5000;

export interface WorkerOptions {
  /** A postgres:// URL, or your postgres.js `sql` (the worker then opens one extra connection for LISTEN). */
  connection: Connection;
  /** Handlers by task name: a function, or a definition from `defineTask`. */
  tasks: TaskMap;
  /**
   * "transaction" when `connection` goes through a transaction-mode pooler
   * (PgBouncer, Supavisor, a pooled Neon URL): statements are not prepared, and
   * LISTEN, which needs a session of its own, goes over `listenConnection`.
   * Without one the worker polls. @default none: a direct connection
   */
  pooler?: Pooler;
  /**
   * A direct connection to Postgres (a URL or your postgres.js `sql`), past the
   * pooler, for the one LISTEN connection, like Prisma's `directUrl`. The
   * worker copies its settings and opens one connection of its own.
   * @default the pool's settings (with `pooler: "transaction"`: none, the worker polls)
   */
  listenConnection?: Connection;
  /** Most connections the worker's own pool opens, besides its LISTEN connection. @default 4 */
  poolSize?: number;
  /** @default "pgpulse" */
  schema?: string;
  /** Queues to serve; with several, jobs in earlier ones are always taken first. @default ["default"] */
  queues?: string[];
  /** Jobs run at once. @default 10 */
  concurrency?: number;
  /** Unique id of this worker; a restart under the same id recovers its orphans at once. @default "w-" + random */
  id?: string;
  /** Sweep for runnable jobs this often, in case a notification was missed. @default 2000 */
  pollIntervalMs?: number;
  /**
   * Without LISTEN (a transaction-mode pooler and no `listenConnection`), each
   * poll that finds nothing doubles the interval, from pollIntervalMs up to
   * this; a poll that finds jobs resets it. @default 10000
   */
  pollIntervalMaxMs?: number;
  /** Refresh this worker's lease this often. @default 5000 */
  heartbeatIntervalMs?: number;
  /** A worker whose heartbeat is older than this is dead and loses its jobs. @default 30000 */
  staleAfterMs?: number;
  /** Run the reaper this often (one worker at a time does the work). @default 5000 */
  reaperIntervalMs?: number;
  /** On stop, wait this long for running jobs before giving them back. @default 10000 */
  gracefulStopMs?: number;
  /** Check that the LISTEN connection still receives this often. @default 10000 */
  listenerHealthIntervalMs?: number;
  /** A health ping not back within this declares the LISTEN connection dead. @default 5000 */
  listenerHealthTimeoutMs?: number;
  /**
   * Collect finished jobs this long and write them in one statement; the starts of jobs
   * claimed ahead of the free slots are written as soon, for those still running. @default 2
   */
  finishBatchMs?: number;
  /** Write progress at most this often per worker. @default 500 */
  progressIntervalMs?: number;
  /** Write handlers' log lines (ctx.log) at most this often per worker; a job's end writes its lines first. @default 200 */
  logIntervalMs?: number;
  /** Most log lines kept per job (across attempts); later lines are counted, not kept. @default 1000 */
  logMaxLines?: number;
  /** Most bytes of log messages and fields kept per job. @default 65536 */
  logMaxBytes?: number;
  /** Default retry delays for tasks that set none. @default { baseMs: 1000, maxMs: 3600000 } */
  backoff?: BackoffOptions;
  /** Default attempt timeout for jobs and tasks that set none. @default none */
  timeoutMs?: number;
  /** A Logger, or the level for the default console logger. @default "info" */
  logger?: Logger | LogLevel;
  /** Middleware around every run of a handler, in order (see `worker.use`). */
  middleware?: WorkerMiddleware[];
  /**
   * Recurring jobs this worker declares (stored in the schedules table at start;
   * every worker enqueues due ticks of every schedule, each tick exactly once).
   */
  schedules?: ScheduleSpec[];
  /** Look for due schedule ticks this often. @default 1000 */
  scheduleIntervalMs?: number;
  /** How long finished jobs are kept, or false to never prune. @default { completedMs: 1 day, failedMs: 14 days } */
  retention?: RetentionOptions | false;
  /**
   * Prune this often (one worker at a time does it). As often, a worker vacuums the jobs
   * table when autovacuum is off for it and over 1,000 dead rows have piled up. @default 60000
   */
  pruneIntervalMs?: number;
  /**
   * Keep per-queue figures by the minute (the dashboard's charts, `queue.getQueueStats`):
   * this worker counts the attempts it starts and ends, and once a minute one worker
   * samples the waiting and running jobs. @default true
   */
  stats?: boolean;
  /** Write those counts this often; the current minute's figures lag by up to this. @default 5000 */
  statsIntervalMs?: number;
  /** Stored on the worker's row for operators (host, pid, version). */
  meta?: Record<string, unknown>;
  /**
   * Overrides the database clock in every time comparison this worker makes
   * (claiming, retries, heartbeats, the reaper). For tests. @default database now()
   */
  clock?: () => Date;
}

const ms = (what: string, min = 1) =>
  v.optional(v.pipe(v.number(`${what} must be a number`), v.integer(`${what} must be an integer`), v.minValue(min, `${what} must be at least ${min}`)));
/** At most INT4_MAX ms (about 24.8 days), as a job's and a task's settings are; a longer timer fires at once. */
const int4 = (what: string, min: number) => v.optional(int(what, min, INT4_MAX));
const queueName = v.pipe(v.string("queue names must be strings"), v.minLength(1, "queue names must not be empty"), v.maxLength(128));

const workerOptionsSchema = v.pipe(
  v.strictObject({
    connection: v.custom<Connection>((x) => typeof x === "string" || typeof x === "function", "connection must be a postgres:// URL or a postgres.js sql"),
    tasks: v.pipe(
      v.record(
        v.pipe(v.string(), v.minLength(1, "task names must not be empty"), v.maxLength(128)),
        v.custom<TaskMap[string]>(
          (x) => typeof x === "function" || (typeof x === "object" && x !== null && typeof (x as { handler?: unknown }).handler === "function"),
          "each task must be a handler function or a defineTask() definition",
        ),
      ),
      v.check((t) => Object.keys(t).length > 0, "tasks must name at least one task"),
    ),
    schema: v.optional(v.string()),
    // checked by checkPoolOptions, as createQueue's are
    pooler: v.optional(v.unknown()),
    listenConnection: v.optional(
      v.custom<Connection>((x) => (typeof x === "string" && x !== "") || typeof x === "function", "listenConnection must be a postgres:// URL or a postgres.js sql"),
    ),
    poolSize: v.optional(v.unknown()),
    queues: v.optional(
      v.pipe(
        v.array(queueName, "queues must be an array of queue names"),
        v.minLength(1, "queues must name at least one queue"),
        v.check((qs) => new Set(qs).size === qs.length, "queues must not repeat a name"),
      ),
    ),
    concurrency: v.optional(v.pipe(v.number(), v.integer("concurrency must be an integer"), v.minValue(1), v.maxValue(1000))),
    id: v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(128))),
    pollIntervalMs: ms("pollIntervalMs", 10),
    pollIntervalMaxMs: ms("pollIntervalMaxMs", 10),
    heartbeatIntervalMs: ms("heartbeatIntervalMs", 10),
    staleAfterMs: ms("staleAfterMs", 20),
    reaperIntervalMs: ms("reaperIntervalMs", 10),
    gracefulStopMs: ms("gracefulStopMs", 0),
    listenerHealthIntervalMs: ms("listenerHealthIntervalMs", 10),
    listenerHealthTimeoutMs: ms("listenerHealthTimeoutMs", 10),
    finishBatchMs: ms("finishBatchMs", 0),
    progressIntervalMs: ms("progressIntervalMs", 10),
    logIntervalMs: ms("logIntervalMs", 1),
    logMaxLines: v.optional(v.pipe(v.number(), v.integer("logMaxLines must be an integer"), v.minValue(0), v.maxValue(1_000_000))),
    logMaxBytes: v.optional(v.pipe(v.number(), v.integer("logMaxBytes must be an integer"), v.minValue(0), v.maxValue(100_000_000))),
    // (at most 2^31-1 ms, as a task's: a longer delay could carry a retry's run time past what Postgres holds)
    backoff: v.optional(v.strictObject({ baseMs: int4("backoff.baseMs", 0), maxMs: int4("backoff.maxMs", 0) })),
    timeoutMs: int4("timeoutMs", 1),
    logger: v.optional(
      v.union([
        v.picklist(["debug", "info", "warn", "error", "silent"]),
        v.custom<Logger>((x) => typeof x === "object" && x !== null && typeof (x as Logger).info === "function", "logger must be a Logger or a level"),
      ]),
    ),
    meta: v.optional(v.record(v.string(), v.unknown())),
    middleware: v.optional(v.array(v.custom<WorkerMiddleware>((x) => typeof x === "function", "each middleware must be a function (ctx, next) => ..."))),
    schedules: v.optional(v.array(v.custom<ScheduleSpec>((x) => typeof x === "object" && x !== null, "each schedule must be an object"))),
    scheduleIntervalMs: ms("scheduleIntervalMs", 10),
    retention: v.optional(
      v.union([v.literal(false), v.strictObject({ completedMs: v.optional(span("retention.completedMs")), failedMs: v.optional(span("retention.failedMs")) })]),
    ),
    pruneIntervalMs: ms("pruneIntervalMs", 10),
    stats: v.optional(v.boolean("stats must be true or false")),
    statsIntervalMs: ms("statsIntervalMs", 10),
    clock: v.optional(v.custom<() => Date>((x) => typeof x === "function", "clock must be a function returning a Date")),
  }),
  v.check(
    // (each beat comes an interval after the last one ended, and may take up to half an interval:
    // beats are further apart than the interval, and a margin just over it reaped live workers)
    (o) => (o.staleAfterMs ?? STALE_AFTER_MS_DEFAULT) >= 2 * (o.heartbeatIntervalMs ?? HEARTBEAT_INTERVAL_MS_DEFAULT),
    "staleAfterMs must be at least twice heartbeatIntervalMs, or live workers would be reaped between their beats",
  ),
  v.check(
    (o) => (o.pollIntervalMaxMs ?? Infinity) >= (o.pollIntervalMs ?? POLL_INTERVAL_MS_DEFAULT),
    "pollIntervalMaxMs must be at least pollIntervalMs",
  ),
);

export function parseWorkerOptions(options: WorkerOptions) {
  checkPoolOptions(options ?? {});
  return parseOrThrow(workerOptionsSchema, options, "INVALID_INPUT", "") as WorkerOptions;
}
