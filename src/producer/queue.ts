import { checkPoolOptions, openSql, POOL_SIZE_QUEUE_DEFAULT, type SqlHandle } from "../db/connection.ts";
import { createDb, type DbOps } from "../db/db.ts";
import { prune } from "../maintenance/pruner.ts";
import { MAX_PAYLOAD_BYTES_DEFAULT, SCHEMA_DEFAULT } from "../shared/defaults.ts";
import { PgPulseError } from "../shared/errors.ts";
import type { TaskDefinition } from "../shared/task.ts";
import { type JobId, jobFromRow } from "../shared/types.ts";
import { checkBulk, runBulk } from "./bulk.ts";
import { checkCallOptions, INT4_MAX, parseOrThrow } from "./enqueue-options.ts";
import { batchFromRow, insertBatch, insertFlow } from "./flows.ts";
import { filterParams, listJobsFilterSchema } from "./job-filter.ts";
import { checkQueueName, configFromRow, configureQueue, setPaused } from "./queue-config.ts";
import { checkScheduleName, scheduleFromRow, triggerSchedule, upsertSchedule } from "./schedules.ts";
import { queueStats } from "./stats.ts";
import { EnqueueMiddleware } from "./enqueue-middleware.ts";
import { insertJobs } from "./insert.ts";
import { type PreparedSpec, specChecker } from "./spec.ts";
import { listQueueStates, listQueues, listWorkers } from "./status.ts";
import type { EnqueueOptions, JobSpec, Queue, QueueMiddleware, QueueOptions } from "./types.ts";
import type { FlowJobSpec, JobGraph } from "./workflow-types.ts";
import { logFromRow, watchJob } from "./watch.ts";

export { MAX_PAYLOAD_BYTES_DEFAULT } from "../shared/defaults.ts";

/**
 * Creates a producer: the part of pgpulse that enqueues and inspects jobs.
 * It holds no connection of its own beyond the pool, so it runs anywhere
 * postgres.js does, edge runtimes included.
 */
export function createQueue(options: QueueOptions): Queue {
  const schema = options.schema ?? SCHEMA_DEFAULT;
  const maxPayloadBytes = options.maxPayloadBytes ?? MAX_PAYLOAD_BYTES_DEFAULT;
  checkPoolOptions(options);
  const { sql, owned } = openSql(options.connection, { max: options.poolSize ?? POOL_SIZE_QUEUE_DEFAULT, pooler: options.pooler });
  const db = createDb(sql, { schema, prepare: options.pooler !== "transaction" });
  const on = (tx: SqlHandle | undefined): DbOps => (tx ? db.withTx(tx) : db);
  let closed = false;

  function ensureOpen() {
    if (closed) throw new PgPulseError("CLOSED", "this queue was closed");
  }

  const toSpec = specChecker(maxPayloadBytes);
  const middleware = new EnqueueMiddleware(options.middleware);
  const insert = (specs: PreparedSpec[], tx: SqlHandle | undefined) => insertJobs(on(tx), specs);

  const queue: Queue = {
    sql,
    db,
    schema,
    maxPayloadBytes,
    use(mw: QueueMiddleware) {
      middleware.add(mw);
      return queue;
    },
    async enqueue(task: string | TaskDefinition<any, any>, payload?: unknown, opts: EnqueueOptions = {}) {
      ensureOpen();
      const { tx, ...rest } = checkCallOptions(opts) as EnqueueOptions;
      const jobs = await middleware.run("enqueue", [{ task, payload, ...rest }], tx, async (specs) => insert([await toSpec(specs[0]!, "")], tx));
      return jobs[0]!;
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
      return middleware.run("enqueueMany", specs, tx, async (checked) => {
        const prepared = [];
        for (const [i, spec] of checked.entries()) {
          if (spec === null || typeof spec !== "object") {
            throw new PgPulseError("INVALID_INPUT", `[${i}] is not a job spec object`, { details: [{ path: `[${i}]`, message: "not an object" }] });
          }
          const one = toSpec(spec, `[${i}].`);
          prepared.push(one instanceof Promise ? await one : one);
        }
        return insert(prepared, tx);
      });
    },
    async enqueueFlow(specs, opts) {
      ensureOpen();
      const { tx } = checkCallOptions(opts) as { tx?: SqlHandle };
      if (!Array.isArray(specs)) {
        throw new PgPulseError("INVALID_INPUT", "enqueueFlow takes an array of job specs", { details: [{ path: "", message: "not an array" }] });
      }
      return middleware.run("enqueueFlow", specs, tx, async (checked) => (await insertFlow(on(tx), checked as FlowJobSpec[], toSpec, null, () => false)).jobs);
    },
    async enqueueBatch(specs, opts = {}) {
      ensureOpen();
      const { tx, callbacks, ...rest } = opts;
      checkCallOptions({ tx });
      if (Object.keys(rest).length > 0 || (callbacks !== undefined && (callbacks === null || typeof callbacks !== "object"))) {
        throw new PgPulseError("INVALID_INPUT", "enqueueBatch takes { callbacks?: { complete?, success?, failure? }, tx? } as its second argument", {
          details: [{ path: "options", message: "unknown option" }],
        });
      }
      const unknown = Object.keys(callbacks ?? {}).filter((k) => !["complete", "success", "failure"].includes(k));
      if (unknown.length > 0) {
        throw new PgPulseError("INVALID_INPUT", `unknown batch callback ${unknown[0]}: use complete, success or failure`, {
          details: [{ path: `callbacks.${unknown[0]}`, message: "unknown callback" }],
        });
      }
      return middleware.runBatch(specs as readonly JobSpec[], callbacks ?? {}, tx, (checked, cbs) => insertBatch(on(tx), checked as FlowJobSpec[], cbs, toSpec));
    },
    async getBatch(id, opts) {
      ensureOpen();
      const { tx } = checkCallOptions(opts) as { tx?: SqlHandle };
      const row = await on(tx).batchGet(idText(id));
      return row ? batchFromRow(row) : null;
    },
    async getGraph(id, opts = {}) {
      ensureOpen();
      const { tx, limit = 200 } = opts;
      checkCallOptions({ tx });
      if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) {
        throw new PgPulseError("INVALID_INPUT", `limit must be a whole number from 1 to 10000, got ${limit}`, { details: [{ path: "limit", message: "out of range" }] });
      }
      const text = idText(id);
      if (!(await on(tx).jobGet(text))) return null;
      const row = await on(tx).flowGraph(text, limit);
      const states = { w: "waiting", d: "settled", b: "blocked" } as const;
      return {
        nodes: row.nodes,
        edges: row.edges.map(([parent, child, mode, state]) => ({ parent, child, mode, state: states[state as keyof typeof states] })),
        truncated: row.truncated,
      } satisfies JobGraph;
    },
    async getJobLogs(id, opts = {}) {
      ensureOpen();
      const { tx, after = 0, limit = 1000 } = opts;
      checkCallOptions({ tx });
      const afterOk = Number.isInteger(after) && after >= 0 && after <= INT4_MAX;
      if (!afterOk || !Number.isInteger(limit) || limit < 1 || limit > 10_000) {
        throw new PgPulseError("INVALID_INPUT", "after must be a whole number from 0 to 2147483647, limit one from 1 to 10000", {
          details: [{ path: afterOk ? "limit" : "after", message: "out of range" }],
        });
      }
      return (await on(tx).logList(idText(id), after, limit)).map(logFromRow);
    },
    watch(id, opts = {}) {
      ensureOpen();
      if (options.pooler === "transaction") {
        throw new PgPulseError("INVALID_STATE", "watch() needs LISTEN, which a transaction-mode pooler does not carry: follow jobs with a queue on a direct connection");
      }
      return watchJob(db, idText(id), opts.signal);
    },
    // (one body for getJob's two signatures)
    getJob: (async (id: JobId, opts?: { tx?: SqlHandle; logs?: boolean }) => {
      ensureOpen();
      const { tx, logs, ...rest } = opts ?? {};
      checkCallOptions({ tx, ...rest });
      const text = idText(id);
      const row = await on(tx).jobGet(text);
      if (!row) return null;
      if (!logs) return jobFromRow(row);
      return { ...jobFromRow(row), logs: (await on(tx).logList(text, 0, 1000)).map(logFromRow) };
    }) as Queue["getJob"],
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
      const parent = job.status === "failed" || job.status === "cancelled" ? await on(tx).jobBlockedBy(job.id) : null;
      if (parent) {
        throw new PgPulseError("INVALID_TRANSITION", `job ${job.id} depends on parent ${parent}, which failed or was cancelled; retry the parent, and this job runs after it`, {
          details: { status: job.status, reason: "parent", parent },
        });
      }
      throw new PgPulseError("INVALID_TRANSITION", `job ${job.id} is ${job.status}; only failed or cancelled jobs can be retried`, {
        details: { status: job.status },
      });
    },
    async listJobs(filter = {}, opts) {
      ensureOpen();
      const { tx } = checkCallOptions(opts) as { tx?: SqlHandle };
      const { limit = 50, cursor, ...f } = parseOrThrow(listJobsFilterSchema, filter, "INVALID_INPUT", "");
      const rows = await on(tx).jobList({ filter: filterParams(f), before: cursor ?? null, limit: limit + 1 });
      const jobs = rows.slice(0, limit).map((r) => jobFromRow(r));
      return { jobs, nextCursor: rows.length > limit ? jobs[jobs.length - 1]!.id : null };
    },
    async retryJobs(filter, opts) {
      ensureOpen();
      return runBulk(db, "retry", checkBulk("retry", filter, opts));
    },
    async cancelJobs(filter, opts) {
      ensureOpen();
      return runBulk(db, "cancel", checkBulk("cancel", filter, opts));
    },
    async deleteJobs(filter, opts) {
      ensureOpen();
      return runBulk(db, "delete", checkBulk("delete", filter, opts));
    },
    async configureQueue(name, limits) {
      ensureOpen();
      return configureQueue(db, name, limits);
    },
    async getQueueConfig(name) {
      ensureOpen();
      return configFromRow(await db.queueGet(checkQueueName(name)), name);
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
      return (await upsertSchedule(db, spec, null, maxPayloadBytes)).schedule;
    },
    async getSchedule(name) {
      ensureOpen();
      const row = await db.scheduleGet(checkScheduleName(name));
      return row ? scheduleFromRow(row) : null;
    },
    async triggerSchedule(name, opts) {
      ensureOpen();
      return triggerSchedule(db, name, opts);
    },
    async listSchedules() {
      ensureOpen();
      return (await db.scheduleList()).map(scheduleFromRow);
    },
    async removeSchedule(name) {
      ensureOpen();
      return db.scheduleRemove(checkScheduleName(name));
    },
    async listQueues() {
      ensureOpen();
      return listQueues(db);
    },
    async listQueueStates() {
      ensureOpen();
      return listQueueStates(db);
    },
    async listWorkers() {
      ensureOpen();
      return listWorkers(db);
    },
    async getQueueStats(opts) {
      ensureOpen();
      return queueStats(db, opts);
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
function idText(id: JobId): string {
  const text = typeof id === "string" ? id : typeof id === "number" || typeof id === "bigint" ? String(id) : "";
  if (!/^[1-9][0-9]{0,18}$/.test(text) || BigInt(text) > 9223372036854775807n) {
    throw new PgPulseError("INVALID_INPUT", `job id must be a positive integer, got ${JSON.stringify(String(id))}`, {
      details: [{ path: "id", message: "not a positive integer" }],
    });
  }
  return text;
}
