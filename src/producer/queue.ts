import * as v from "valibot";
import type postgres from "postgres";
import { type Connection, openSql, type SqlHandle } from "../db/connection.ts";
import { createDb, type Db, type DbOps } from "../db/db.ts";
import { MAX_ATTEMPTS_DEFAULT, MAX_PAYLOAD_BYTES_DEFAULT, SCHEMA_DEFAULT } from "../shared/defaults.ts";
import {
  checkCallOptions,
  enqueueOptionsSchema,
  listJobsFilterSchema,
  type ParsedEnqueueOptions,
  parseOrThrow,
  taskNameSchema,
  toIssues,
} from "./enqueue-options.ts";
import { PgPulseError } from "../shared/errors.ts";
import { toJsonText } from "../shared/json.ts";
import { configFromRow, configureQueue, type QueueConfig, type QueueLimits, setPaused } from "./queue-config.ts";
import { prune, type RetentionOptions } from "../maintenance/pruner.ts";
import { type Schedule, scheduleFromRow, type ScheduleSpec, upsertSchedule } from "./schedules.ts";
import { listQueues, listWorkers, type QueueSummary, type WorkerSummary } from "./status.ts";
import { isTaskDefinition, type PayloadOf, type TaskDefinition } from "../shared/task.ts";
import { type EnqueuedJob, type Job, type JobId, type JobStatus, jobFromRow } from "../shared/types.ts";

export { MAX_PAYLOAD_BYTES_DEFAULT } from "../shared/defaults.ts";

export interface QueueOptions {
  /** A postgres:// URL (the queue opens and closes its own pool) or your postgres.js `sql`. */
  connection: Connection;
  /** Schema that holds pgpulse's tables. @default "pgpulse" */
  schema?: string;
  /** Largest payload accepted, in bytes of JSON. @default 1_048_576 */
  maxPayloadBytes?: number;
}

export interface EnqueueOptions {
  /** @default "default" */
  queue?: string;
  /** Higher runs first within a queue. @default 0 */
  priority?: number;
  /** Earliest time to run. Give this or `delayMs`, not both. */
  runAt?: Date | string;
  /** Run no sooner than this many milliseconds from now (database time). */
  delayMs?: number;
  /** @default 10 (or the task definition's) */
  maxAttempts?: number;
  /** Time one attempt may take. @default the task's timeout, else none */
  timeoutMs?: number;
  /** Idempotency key: while a job with this key is queued or running, enqueue returns it instead of a new one. */
  key?: string;
  /** With `key`: a job with the key created within this window, whatever its state, is returned instead. */
  throttleMs?: number;
  /**
   * With `key`: the job runs `debounceMs` after the last enqueue. A queued job with the key
   * takes this payload and options and its run time moves back; a running one is returned as it is.
   */
  debounceMs?: number;
  /** Group (a tenant id, say) for the queue's per-group concurrency limit. */
  group?: string;
  /** Enqueue inside your transaction: the job commits or rolls back with your writes. */
  tx?: SqlHandle;
}

export interface ListJobsFilter {
  status?: JobStatus;
  queue?: string;
  task?: string;
  /** @default 50, at most 500 */
  limit?: number;
  /** The `nextCursor` of the previous page. */
  cursor?: string;
}

/** One job for `enqueueMany`. */
export interface JobSpec<P = unknown> extends Omit<EnqueueOptions, "tx"> {
  task: string | TaskDefinition<any, any>;
  payload?: P;
}

export interface Queue {
  /** Adds one job. Validates everything first: bad input throws a PgPulseError and writes nothing. */
  enqueue<D extends TaskDefinition<any, any>>(
    task: D,
    payload: PayloadOf<D>,
    options?: EnqueueOptions,
  ): Promise<EnqueuedJob>;
  enqueue<P = unknown>(task: string, payload?: P, options?: EnqueueOptions): Promise<EnqueuedJob<P>>;
  /** Adds many jobs in one statement, all or none; results are in input order. */
  enqueueMany(specs: readonly JobSpec[], options?: { tx?: SqlHandle }): Promise<EnqueuedJob[]>;
  /** The job, or null when there is no such job. */
  getJob<P = unknown, R = unknown>(id: JobId, options?: { tx?: SqlHandle }): Promise<Job<P, R> | null>;
  /**
   * Cancels a job. A queued job is cancelled at once; a running one is asked to
   * stop (its handler's signal aborts) and ends as cancelled. Throws NOT_FOUND,
   * or INVALID_TRANSITION when the job has already finished.
   */
  cancel(id: JobId, options?: { tx?: SqlHandle }): Promise<Job>;
  /**
   * Puts a failed or cancelled job back in the queue to run now, with at least
   * one attempt left; its error history is kept. Throws NOT_FOUND, or
   * INVALID_TRANSITION when the job is queued, running or completed, or when
   * another live job now holds its key.
   */
  retry(id: JobId, options?: { tx?: SqlHandle }): Promise<Job>;
  /** Jobs newest first, filtered; pass `nextCursor` back as `cursor` for the next page. */
  listJobs(filter?: ListJobsFilter, options?: { tx?: SqlHandle }): Promise<{ jobs: Job[]; nextCursor: string | null }>;
  /** Per queue: jobs by state, the oldest waiting job's age, jobs finished in the last minute. */
  listQueues(): Promise<QueueSummary[]>;
  /** Live workers (by heartbeat row) with their heartbeat age and running jobs. */
  listWorkers(): Promise<WorkerSummary[]>;
  /** Sets a queue's limits across all workers; limits left out keep their value, `null` removes one. */
  configureQueue(name: string, limits: QueueLimits): Promise<QueueConfig>;
  /** A queue's limits and whether it is paused. */
  getQueueConfig(name: string): Promise<QueueConfig>;
  /** Stops new jobs of the queue from starting; running ones finish. */
  pauseQueue(name: string): Promise<QueueConfig>;
  /** Lets the queue's jobs start again, and wakes the workers. */
  resumeQueue(name: string): Promise<QueueConfig>;
  /** Deletes finished jobs past retention, in small batches; returns how many. */
  prune(retention?: RetentionOptions): Promise<number>;
  /** Adds a recurring job, or replaces the definition of the schedule with that name. */
  addSchedule(spec: ScheduleSpec): Promise<Schedule>;
  listSchedules(): Promise<Schedule[]>;
  /** Removes a schedule; false when there was none by that name. */
  removeSchedule(name: string): Promise<boolean>;
  /** Ends the pool if the queue opened it. */
  close(): Promise<void>;
  /** The pool the queue runs on: start your own transactions with it (`queue.sql.begin(...)`) and pass them as `tx`. */
  readonly sql: postgres.Sql;
  /** The database layer under the queue: every statement pgpulse runs on this schema, as named operations. */
  readonly db: Db;
  readonly schema: string;
}

/**
 * Creates a producer: the part of pgpulse that enqueues and inspects jobs.
 * It holds no connection of its own beyond the pool, so it runs anywhere
 * postgres.js does, edge runtimes included.
 */
export function createQueue(options: QueueOptions): Queue {
  const schema = options.schema ?? SCHEMA_DEFAULT;
  const maxPayloadBytes = options.maxPayloadBytes ?? MAX_PAYLOAD_BYTES_DEFAULT;
  const { sql, owned } = openSql(options.connection);
  const db = createDb(sql, { schema });
  const on = (tx: SqlHandle | undefined): DbOps => (tx ? db.withTx(tx) : db);
  let closed = false;

  function ensureOpen() {
    if (closed) throw new PgPulseError("CLOSED", "this queue was closed");
  }

  /** A checked spec as JSON text for the database, and whether it carries a key. */
  interface PreparedSpec {
    text: string;
    keyed: boolean;
    /** The payload as stored, for the job returned by a plain insert. */
    payloadText: string;
    task: string;
    opts: ParsedEnqueueOptions;
  }

  // Task names already found valid: a bulk enqueue of one task checks its name once.
  const goodNames = new Set<string>();

  /** Checks a spec; a promise only when a task's payload schema must run (it may be async). */
  function toSpec(spec: JobSpec, path: string): PreparedSpec | Promise<PreparedSpec> {
    const { task, payload, ...rest } = spec as JobSpec & Record<string, unknown>;
    const def = isTaskDefinition(task) ? task : undefined;
    const taskName = def ? def.name : task;
    if (typeof taskName !== "string" || !goodNames.has(taskName)) {
      parseOrThrow(taskNameSchema, taskName, "INVALID_INPUT", `${path}task`);
      if (goodNames.size < 1000) goodNames.add(taskName as string);
    }
    // A definition's settings are defaults: what the call gives wins. Both are checked alike.
    const given = def ? { ...definedOnly({ queue: def.queue, priority: def.priority, maxAttempts: def.maxAttempts, timeoutMs: def.timeoutMs }), ...rest } : rest;
    // Nothing to check when there are no options (the common bulk case).
    let opts: ParsedEnqueueOptions = {};
    for (const _ in given) {
      opts = parseOrThrow(enqueueOptionsSchema, given, "INVALID_INPUT", path.replace(/\.$/, ""));
      break;
    }
    const body = payload === undefined ? {} : payload;
    if (!def?.schema) return specText(taskName as string, body, opts, path);
    return v.safeParseAsync(def.schema, body).then((checked) => {
      if (!checked.success) {
        const issues = toIssues(checked.issues, `${path}payload`);
        throw new PgPulseError(
          "INVALID_PAYLOAD",
          `payload for task "${def.name}" is invalid: ${issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`,
          { details: issues },
        );
      }
      return specText(def.name, body, opts, path);
    });
  }

  function specText(task: string, payload: unknown, opts: ParsedEnqueueOptions, path: string): PreparedSpec {
    const payloadText = toJsonText(payload, `${path}payload`, maxPayloadBytes);
    const fields = JSON.stringify({
      task,
      queue: opts.queue,
      priority: opts.priority,
      run_at: opts.runAt?.toISOString(),
      delay_ms: opts.delayMs,
      max_attempts: opts.maxAttempts,
      timeout_ms: opts.timeoutMs,
      key: opts.key,
      group: opts.group,
      throttle_ms: opts.throttleMs,
      debounce_ms: opts.debounceMs,
      ...(opts.debounceMs !== undefined ? { delay_ms: opts.debounceMs } : {}),
    });
    // The payload was serialised once, checked; it goes in as it is.
    return { text: `{"payload":${payloadText},${fields.slice(1)}`, keyed: opts.key !== undefined, payloadText, task, opts };
  }

  async function insert(specs: PreparedSpec[], tx: SqlHandle | undefined): Promise<EnqueuedJob[]> {
    const body = `[${specs.map((s) => s.text).join(",")}]`;
    if (specs.some((s) => s.keyed)) {
      const rows = await on(tx).jobEnqueueMany(body);
      return rows.map(({ row, inserted }) => ({ ...jobFromRow(row), deduplicated: !inserted }));
    }
    // Only what the database decided comes back (the ids and its clock); the rest of a new job is known.
    const { ids, now } = await on(tx).jobInsertMany(body);
    return specs.map(({ task, opts, payloadText }, i) => ({
      id: ids[i]!, queue: opts.queue ?? "default", task, payload: JSON.parse(payloadText), status: "queued" as const,
      priority: opts.priority ?? 0,
      runAt: new Date(opts.runAt ? opts.runAt.getTime() : now.getTime() + (opts.delayMs ?? 0)),
      attempts: 0, maxAttempts: opts.maxAttempts ?? MAX_ATTEMPTS_DEFAULT, timeoutMs: opts.timeoutMs ?? null,
      key: null, progress: 0, result: null, errors: [], workerId: null, cancelRequestedAt: null,
      createdAt: new Date(now.getTime()), startedAt: null, finishedAt: null, deduplicated: false,
    }));
  }

  const queue: Queue = {
    sql,
    db,
    schema,
    async enqueue(task: string | TaskDefinition<any, any>, payload?: unknown, opts: EnqueueOptions = {}) {
      ensureOpen();
      const { tx, ...rest } = checkCallOptions(opts) as EnqueueOptions;
      const spec = await toSpec({ task, payload, ...rest }, "");
      const [job] = await insert([spec], tx);
      return job!;
    },
    async enqueueMany(specs, opts) {
      ensureOpen();
      const { tx } = checkCallOptions(opts) as { tx?: SqlHandle };
      if (opts && Object.keys(opts).some((k) => k !== "tx")) {
        throw new PgPulseError("INVALID_INPUT", "enqueueMany takes only { tx } as its second argument; put job options in each spec", {
          details: [{ path: "options", message: "unknown option" }],
        });
      }
      if (!Array.isArray(specs)) {
        throw new PgPulseError("INVALID_INPUT", "enqueueMany takes an array of job specs", { details: [{ path: "", message: "not an array" }] });
      }
      if (specs.length === 0) return [];
      const prepared = [];
      for (const [i, spec] of specs.entries()) {
        if (spec === null || typeof spec !== "object") {
          throw new PgPulseError("INVALID_INPUT", `[${i}] is not a job spec object`, { details: [{ path: `[${i}]`, message: "not an object" }] });
        }
        const one = toSpec(spec, `[${i}].`);
        prepared.push(one instanceof Promise ? await one : one);
      }
      return insert(prepared, tx);
    },
    async getJob(id, opts) {
      ensureOpen();
      const { tx } = checkCallOptions(opts) as { tx?: SqlHandle };
      const row = await on(tx).jobGet(idText(id));
      return row ? jobFromRow(row) : null;
    },
    async cancel(id, opts) {
      ensureOpen();
      const { tx } = checkCallOptions(opts) as { tx?: SqlHandle };
      const row = await on(tx).jobCancel(idText(id));
      if (row) return jobFromRow(row);
      const job = await queue.getJob(id, tx ? { tx } : undefined);
      if (!job) throw new PgPulseError("NOT_FOUND", `no job with id ${idText(id)}`);
      throw new PgPulseError("INVALID_TRANSITION", `job ${job.id} is ${job.status} and cannot be cancelled`, {
        details: { status: job.status },
      });
    },
    async retry(id, opts) {
      ensureOpen();
      const { tx } = checkCallOptions(opts) as { tx?: SqlHandle };
      let row;
      try {
        row = await on(tx).jobRetry(idText(id));
      } catch (error) {
        if ((error as { code?: string }).code !== "23505") throw error;
        throw new PgPulseError("INVALID_TRANSITION", `job ${idText(id)} cannot run again: another live job holds its key`, {
          cause: error,
          details: { reason: "key" },
        });
      }
      if (row) return jobFromRow(row);
      const job = await queue.getJob(id, tx ? { tx } : undefined);
      if (!job) throw new PgPulseError("NOT_FOUND", `no job with id ${idText(id)}`);
      throw new PgPulseError("INVALID_TRANSITION", `job ${job.id} is ${job.status}; only failed or cancelled jobs can be retried`, {
        details: { status: job.status },
      });
    },
    async listJobs(filter = {}, opts) {
      ensureOpen();
      const { tx } = checkCallOptions(opts) as { tx?: SqlHandle };
      const f = parseOrThrow(listJobsFilterSchema, filter, "INVALID_INPUT", "");
      const limit = f.limit ?? 50;
      const rows = await on(tx).jobList({
        status: f.status ?? null, queue: f.queue ?? null, task: f.task ?? null, before: f.cursor ?? null, limit: limit + 1,
      });
      const jobs = rows.slice(0, limit).map((r) => jobFromRow(r));
      return { jobs, nextCursor: rows.length > limit ? jobs[jobs.length - 1]!.id : null };
    },
    async configureQueue(name, limits) {
      ensureOpen();
      return configureQueue(db, name, limits);
    },
    async getQueueConfig(name) {
      ensureOpen();
      return configFromRow(await db.queueGet(name), name);
    },
    async pauseQueue(name) {
      ensureOpen();
      return setPaused(db, name, true);
    },
    async resumeQueue(name) {
      ensureOpen();
      return setPaused(db, name, false);
    },
    async prune(retention) {
      ensureOpen();
      return prune(db, retention);
    },
    async addSchedule(spec) {
      ensureOpen();
      return upsertSchedule(db, spec, null);
    },
    async listSchedules() {
      ensureOpen();
      return (await db.scheduleList()).map(scheduleFromRow);
    },
    async removeSchedule(name) {
      ensureOpen();
      return db.scheduleRemove(name);
    },
    async listQueues() {
      ensureOpen();
      return listQueues(db);
    },
    async listWorkers() {
      ensureOpen();
      return listWorkers(db);
    },
    async close() {
      if (closed) return;
      closed = true;
      if (owned) await sql.end({ timeout: 5 });
    },
  };
  return queue;
}

/** Checks a job id and returns its decimal text. */
export function idText(id: JobId): string {
  const text = typeof id === "string" ? id : typeof id === "number" || typeof id === "bigint" ? String(id) : "";
  if (!/^[1-9][0-9]{0,18}$/.test(text) || BigInt(text) > 9223372036854775807n) {
    throw new PgPulseError("INVALID_INPUT", `job id must be a positive integer, got ${JSON.stringify(String(id))}`, {
      details: [{ path: "id", message: "not a positive integer" }],
    });
  }
  return text;
}

function definedOnly(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, value]) => value !== undefined));
}
