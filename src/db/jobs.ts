import { MAX_ATTEMPTS_DEFAULT } from "../shared/defaults.ts";
import type { JobRow, JobStatus } from "../shared/types.ts";
import { CONTROL_CHANNEL, notifyEnqueued } from "./channels.ts";
import { type DbContext, inTx, jobJson, run, runJson, runRows, whilePresent } from "./context.ts";
import { FILTER_PARAM_COUNT, filterSql, filterValues, type JobFilterParams } from "./job-filter.ts";

/**
 * The parent that keeps a job from being retried, as a select of parent_id: one
 * whose failure ended it (edge state 'b'), or one that stands failed or
 * cancelled with an edge that fails or cancels it. The lowest id first.
 */
function blockerOf(q: string, id: string): string {
  return `
    select e.parent_id::text from ${q}.job_deps e join ${q}.jobs p on p.id = e.parent_id
     where e.child_id = ${id}
       and (e.state = 'b' or (e.state = 'w' and e.mode in ('fail', 'cancel') and p.status in ('failed', 'cancelled')))
     order by e.parent_id limit 1`;
}

/** The statements a producer runs on the jobs table. */
export function jobsSql(q: string) {
  return {
    // Keys need enqueue_many (sql/000001): deduplication, throttle, debounce. On the pool,
    // enqueue_keys() (sql/000011) calls it, commits, then notifies, as enqueue_plain() does;
    // its answer is one JSON text, per spec [ord, true, id, created_at] for a job it inserted,
    // [ord, inserted, job] for a live job it found, or inserted and a later spec of the call
    // changed. On a version-10 schema, enqueue_keyed() does the same but answers
    // [ord, inserted, job] for every spec. In the caller's transaction, enqueue_many() in a
    // statement that answers as enqueue_keys() does, a row per spec (runJson), and the
    // notification goes with the transaction.
    enqueueKeysProc: `call ${q}.enqueue_keys($1::text::jsonb, null)`,
    enqueueKeyedProc: `call ${q}.enqueue_keyed($1::text::jsonb, null)`,
    enqueueKeyed: `
      select (case when e.inserted and e.specs = 1 then json_build_array(e.ord, true, (e.job).id::text, (e.job).created_at)
                   else json_build_array(e.ord, e.inserted, ${jobJson("(e.job)")}) end)::text
        from (select m.*, count(*) over (partition by (m.job).id) as specs from ${q}.enqueue_many($1::text::jsonb) m) e
       order by e.ord`,
    // Jobs without keys cannot collide: one INSERT, and one notification for the statement.
    // Only what the database decides comes back (the ids and its clock): the rest is known.
    // On the pool, enqueue_plain() (sql/000009, the same INSERT) commits the insert, then
    // notifies from a transaction of its own, so that the insert's commit does not hold the
    // lock Postgres keeps for notifying commits until they are on disk.
    enqueuePlain: `call ${q}.enqueue_plain($1::text::jsonb, null, null)`,
    // In the caller's transaction the notification goes with it: only its commit may wake a worker.
    insertPlain: `
      with t as (select now() as now),
      ins as (
        insert into ${q}.jobs (queue, task, payload, priority, run_at, max_attempts, timeout_ms, group_key, created_at, meta)
        select coalesce(s.queue, 'default'), s.task, coalesce(s.payload, '{}'), coalesce(s.priority, 0),
          coalesce(s.run_at, t.now + coalesce(s.delay_ms, 0) * interval '1 millisecond'),
          coalesce(s.max_attempts, ${MAX_ATTEMPTS_DEFAULT}), s.timeout_ms, s."group", t.now, s.meta
        from jsonb_to_recordset($1::text::jsonb) as s(task text, payload jsonb, queue text, priority integer,
          run_at timestamptz, delay_ms bigint, max_attempts integer, timeout_ms integer, "group" text, meta jsonb), t
        returning id, queue, run_at
      ),
      note as (
        select ${notifyEnqueued("$2::text", "array_agg(distinct ins.queue)", "count(*)")}
        from ins, t where ins.run_at <= t.now having count(*) > 0
      )
      select json_build_array(string_agg(ins.id::text, ',' order by ins.id), (select now from t),
        (select count(*) from note))::text
      from ins`,
    // What a caller's transaction may run comes back as JSON text (runJson).
    get: `select ${jobJson("j")}::text from ${q}.jobs j where j.id = $1::bigint`,
    cancel: `
      with upd as (
        update ${q}.jobs j set
          status = case when j.status <> 'running' then 'cancelled'::${q}.job_status else j.status end,
          finished_at = case when j.status <> 'running' then now() else j.finished_at end,
          cancel_requested_at = coalesce(j.cancel_requested_at, now())
        where j.id = $1::bigint and j.status in ('pending', 'queued', 'running')
        returning j.*
      ), note as (
        select pg_notify('${CONTROL_CHANNEL}', json_build_object(
          'schema', $2::text, 'type', 'cancel', 'job', upd.id::text, 'worker', upd.worker_id)::text)
        from upd where upd.status = 'running'
      )
      select (${jobJson("upd")} || jsonb_build_object('notified', (select count(*) from note)))::text from upd`,
    // Taken first, in its own statement: what the retry then reads of the job's
    // parents and edges is what was committed by whoever held the job before.
    retryLock: `select 1 from ${q}.jobs where id = $1::bigint and status in ('failed', 'cancelled') for update`,
    // A job of a flow is retried only while none of its parents stands failed or
    // cancelled with an edge that fails or cancels it (retry that parent: sql/000006
    // resumes its children). Its edges from parents that no longer stand ended
    // wait again, and it waits ("pending") while any parent is left.
    retry: `
      with blocker as (${blockerOf(q, "$1::bigint")}),
      rewait as (
        update ${q}.job_deps e set state = 'w'
          from ${q}.jobs p
         where e.child_id = $1::bigint and e.state = 'd' and p.id = e.parent_id
           and p.status not in ('completed', 'failed', 'cancelled')
           and not exists (select 1 from blocker)
           and exists (select 1 from ${q}.jobs j where j.id = $1::bigint and j.status in ('failed', 'cancelled'))
        returning 1
      ),
      upd as (
        update ${q}.jobs j set
          parents_left = j.parents_left + (select count(*) from rewait),
          status = case when coalesce(j.parents_left, 0) + (select count(*) from rewait) > 0 then 'pending'::${q}.job_status
                        else 'queued'::${q}.job_status end,
          run_at = now(), worker_id = null, started_at = null,
          finished_at = null, cancel_requested_at = null, progress = 0,
          max_attempts = greatest(j.max_attempts, j.attempts + 1)
        where j.id = $1::bigint and j.status in ('failed', 'cancelled') and not exists (select 1 from blocker)
        returning j.*
      ), note as (
        select ${notifyEnqueued("$2::text", "json_build_array(upd.queue)", "1")} from upd where upd.status = 'queued'
      )
      select (${jobJson("upd")} || jsonb_build_object('notified', (select count(*) from note)))::text from upd`,
    blockedBy: `select to_json(b.parent_id)::text from (${blockerOf(q, "$1::bigint")}) b`,
    // Queues that have jobs runnable now, the one with the oldest such job first.
    runnableQueues: `select queue from ${q}.jobs where status = 'queued' and run_at <= coalesce($1::timestamptz, now())
      group by queue order by min(id)`,
    list: `
      select ${jobJson("j")}::text from ${q}.jobs j
      where ${filterSql(q, "j", 1)}
        and ($${FILTER_PARAM_COUNT + 1}::bigint is null or j.id < $${FILTER_PARAM_COUNT + 1}::bigint)
      order by j.id desc limit $${FILTER_PARAM_COUNT + 2}`,
  };
}

export interface ListJobsParams {
  filter: JobFilterParams;
  /** Only ids below this one (the cursor). */
  before: string | null;
  limit: number;
}

const TIME_COLUMNS = ["run_at", "cancel_requested_at", "created_at", "started_at", "finished_at"] as const;

/** A jobs row as JSON (jobJson(): ids as strings), with its times made Dates, as a query of the row would return it. */
function jobRowFromJson(job: Record<string, unknown>): JobRow {
  for (const k of TIME_COLUMNS) if (typeof job[k] === "string") job[k] = new Date(job[k] as string);
  return job as unknown as JobRow;
}

/** What an enqueue with keys made of one spec: `ord` is the spec's place in the call, from 1. */
export type KeyedMade =
  /** A job inserted as its spec says, with the database's id and clock. */
  | { kind: "new"; ord: number; id: string; createdAt: Date }
  /** A job as it stands: the live job with the spec's key, found (inserted false), or inserted and changed by a later spec of the call. */
  | { kind: "row"; ord: number; inserted: boolean; row: JobRow };

/** One spec's answer: enqueue_keys()'s forms, or enqueue_keyed()'s ([ord, inserted, job] for every spec). */
function keyedMade([ord, inserted, job, createdAt]: [number, boolean, string | Record<string, unknown>, string?]): KeyedMade {
  if (typeof job === "string") return { kind: "new", ord, id: job, createdAt: new Date(createdAt!) };
  return { kind: "row", ord, inserted, row: jobRowFromJson(job) };
}

export function jobsOps(c: DbContext, t: ReturnType<typeof jobsSql>) {
  // A schema still at version 8 has no enqueue_plain() (nor, before version 10, enqueue_keyed();
  // nor, before version 11, enqueue_keys()).
  const plain = whilePresent(c, "enqueue_plain");
  const keys = whilePresent(c, "enqueue_keys");
  const keyed = whilePresent(c, "enqueue_keyed");
  return {
    /** Inserts jobs without keys; `specs` is a JSON array of enqueue specs. Returns their ids, in order, and the database's clock. */
    async jobInsertMany(specs: string): Promise<{ ids: string[]; now: Date }> {
      return plain(
        async () => {
          const [row] = await run(c, t.enqueuePlain, [specs]);
          return { ids: (row!.ids as string).split(","), now: row!.now as Date };
        },
        async () => {
          const [row] = await runJson<[string, string, number]>(c, t.insertPlain, [specs, c.schema]);
          const [ids, now] = row!;
          return { ids: ids.split(","), now: new Date(now) };
        },
      );
    },
    /**
     * Enqueues through enqueue_many (keys, throttle, debounce): what each spec made, in input
     * order. A spec whose job was deleted by another session before the call's answer was read
     * (a throttle matched a finished job, then a prune took it) has no answer: see `ord`.
     */
    async jobEnqueueMany(specs: string): Promise<KeyedMade[]> {
      type Answer = Parameters<typeof keyedMade>[0];
      const called = async (text: string) => {
        const [row] = await run(c, text, [specs]);
        return JSON.parse((row!.jobs as string | null) ?? "[]") as Answer[];
      };
      const made = await keys(
        () => called(t.enqueueKeysProc),
        () => keyed(() => called(t.enqueueKeyedProc), () => runJson<Answer>(c, t.enqueueKeyed, [specs])),
      );
      return made.map(keyedMade);
    },
    async jobGet(id: string): Promise<JobRow | null> {
      const [job] = await runJson<Record<string, unknown>>(c, t.get, [id]);
      return job ? jobRowFromJson(job) : null;
    },
    /** Cancels a pending or queued job, or asks a running one to stop; null when the job has ended. */
    async jobCancel(id: string): Promise<JobRow | null> {
      const [job] = await runJson<Record<string, unknown>>(c, t.cancel, [id, c.schema]);
      return job ? jobRowFromJson(job) : null;
    },
    /**
     * Puts a failed or cancelled job back to run now (or to wait for its parents); null when it is in
     * another state or a parent's failure ended it. Throws 23505 when its key is taken.
     */
    async jobRetry(id: string): Promise<JobRow | null> {
      return inTx(c, async (tx) => {
        if ((await run(tx, t.retryLock, [id])).length === 0) return null;
        const [job] = await runJson<Record<string, unknown>>(tx, t.retry, [id, c.schema]);
        return job ? jobRowFromJson(job) : null;
      });
    },
    /** The parent that keeps a job of a flow from being retried, or null (see blockerOf). */
    async jobBlockedBy(id: string): Promise<string | null> {
      const [parent] = await runJson<string>(c, t.blockedBy, [id]);
      return parent ?? null;
    },
    /** The queues with jobs runnable at `now` (the database's clock when null). */
    async jobRunnableQueues(now: Date | null): Promise<string[]> {
      // (runJobs of pgpulse/testing asks in the caller's transaction: read by position)
      return (await runRows(c, t.runnableQueues, [now])).map((r) => r[0] as string);
    },
    /** Newest first. */
    async jobList(p: ListJobsParams): Promise<JobRow[]> {
      return (await runJson<Record<string, unknown>>(c, t.list, [...filterValues(p.filter), p.before, p.limit])).map(jobRowFromJson);
    },
  };
}
