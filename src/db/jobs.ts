import { MAX_ATTEMPTS_DEFAULT } from "../shared/defaults.ts";
import type { JobRow, JobStatus } from "../shared/types.ts";
import { CONTROL_CHANNEL, notifyEnqueued } from "./channels.ts";
import { type DbContext, run } from "./context.ts";

/** The statements a producer runs on the jobs table. */
export function jobsSql(q: string) {
  return {
    // Keys need enqueue_many (sql/000001): deduplication, throttle, debounce.
    enqueueKeyed: `select e.ord, e.inserted, (e.job).* from ${q}.enqueue_many($1::text::jsonb) e order by e.ord`,
    // Jobs without keys cannot collide: one INSERT, and one notification for the statement.
    // Only what the database decides comes back (the ids and its clock): the rest is known.
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
      select string_agg(ins.id::text, ',' order by ins.id) as ids, (select now from t) as now,
        (select count(*) from note) as notified
      from ins`,
    get: `select * from ${q}.jobs where id = $1::bigint`,
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
      select upd.*, (select count(*) from note) as notified from upd`,
    retry: `
      with upd as (
        -- a job with parents still to end waits for them again; one that a
        -- parent's failure ended is not retried (its parent is: see sql/000006)
        update ${q}.jobs j set
          status = case when coalesce(j.parents_left, 0) > 0 then 'pending'::${q}.job_status
                        else 'queued'::${q}.job_status end,
          run_at = now(), worker_id = null, started_at = null,
          finished_at = null, cancel_requested_at = null, progress = 0,
          max_attempts = greatest(j.max_attempts, j.attempts + 1)
        where j.id = $1::bigint and j.status in ('failed', 'cancelled')
          and not exists (select 1 from ${q}.job_deps e where e.child_id = j.id and e.state = 'b')
        returning j.*
      ), note as (
        select ${notifyEnqueued("$2::text", "json_build_array(upd.queue)", "1")} from upd where upd.status = 'queued'
      )
      select upd.*, (select count(*) from note) as notified from upd`,
    // Jobs matching a task, a queue, a status and a JSON containment of the payload, oldest first.
    find: `
      select * from ${q}.jobs
      where ($1::text is null or task = $1) and ($2::text is null or queue = $2)
        and ($3::text is null or status = $3::${q}.job_status) and ($4::text is null or payload @> $4::text::jsonb)
      order by id limit $5`,
    // Queues that have jobs runnable now.
    runnableQueues: `select distinct queue from ${q}.jobs where status = 'queued' and run_at <= coalesce($1::timestamptz, now())`,
    list: `
      select * from ${q}.jobs
      where ($1::text is null or status = $1::${q}.job_status)
        and ($2::text is null or queue = $2) and ($3::text is null or task = $3)
        and ($4::bigint is null or id < $4::bigint)
      order by id desc limit $5`,
  };
}

export interface ListJobsParams {
  status: JobStatus | null;
  queue: string | null;
  task: string | null;
  /** Only ids below this one (the cursor). */
  before: string | null;
  limit: number;
}

export interface FindJobsParams {
  task: string | null;
  queue: string | null;
  status: JobStatus | null;
  /** Matches jobs whose payload contains this JSON (Postgres's @>). */
  payload: unknown;
  limit: number;
}

export function jobsOps(c: DbContext, t: ReturnType<typeof jobsSql>) {
  return {
    /** Inserts jobs without keys; `specs` is a JSON array of enqueue specs. Returns their ids, in order, and the database's clock. */
    async jobInsertMany(specs: string): Promise<{ ids: string[]; now: Date }> {
      const [row] = await run(c, t.insertPlain, [specs, c.schema]);
      return { ids: (row!.ids as string).split(","), now: row!.now as Date };
    },
    /** Inserts jobs through enqueue_many (keys, throttle, debounce); rows in input order. */
    async jobEnqueueMany(specs: string): Promise<{ row: JobRow; inserted: boolean }[]> {
      const rows = await run(c, t.enqueueKeyed, [specs]);
      return rows.map((r) => ({ row: r as unknown as JobRow, inserted: r.inserted as boolean }));
    },
    async jobGet(id: string): Promise<JobRow | null> {
      const [row] = await run(c, t.get, [id]);
      return (row as JobRow | undefined) ?? null;
    },
    /** Cancels a pending or queued job, or asks a running one to stop; null when the job has ended. */
    async jobCancel(id: string): Promise<JobRow | null> {
      const [row] = await run(c, t.cancel, [id, c.schema]);
      return (row as JobRow | undefined) ?? null;
    },
    /**
     * Puts a failed or cancelled job back to run now (or to wait for its parents); null when it is in
     * another state or a parent's failure ended it. Throws 23505 when its key is taken.
     */
    async jobRetry(id: string): Promise<JobRow | null> {
      const [row] = await run(c, t.retry, [id, c.schema]);
      return (row as JobRow | undefined) ?? null;
    },
    /** Jobs matching every field given (payload: a JSON containment), oldest first. */
    async jobFind(p: FindJobsParams): Promise<JobRow[]> {
      const rows = await run(c, t.find, [p.task, p.queue, p.status, p.payload === null ? null : JSON.stringify(p.payload), p.limit]);
      return rows as unknown as JobRow[];
    },
    /** The queues with jobs runnable at `now` (the database's clock when null). */
    async jobRunnableQueues(now: Date | null): Promise<string[]> {
      return (await run(c, t.runnableQueues, [now])).map((r) => r.queue as string);
    },
    /** Newest first. */
    async jobList(p: ListJobsParams): Promise<JobRow[]> {
      const rows = await run(c, t.list, [p.status, p.queue, p.task, p.before, p.limit]);
      return rows as unknown as JobRow[];
    },
  };
}
