import { CONTROL_CHANNEL, ENQUEUED_CHANNEL } from "./channels.ts";
import { type DbContext, run, send } from "./context.ts";

/** Upper bounds of the run-time histogram, in seconds. */
export const RUN_SECONDS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800] as const;

/** A queue's jobs by state, as select-list columns over jobs `j` and `t.now`. */
const STATE_COUNTS = `
  count(*) filter (where j.status = 'pending')::int as pending,
  count(*) filter (where j.status = 'queued' and j.run_at <= t.now)::int as waiting,
  count(*) filter (where j.status = 'queued' and j.run_at > t.now)::int as scheduled,
  count(*) filter (where j.status = 'running')::int as running,
  count(*) filter (where j.status = 'completed')::int as completed,
  count(*) filter (where j.status = 'failed')::int as failed,
  count(*) filter (where j.status = 'cancelled')::int as cancelled`;

export function statusSql(q: string) {
  const ran = `j.status in ('completed', 'failed') and j.started_at is not null and j.finished_at is not null`;
  const secs = `extract(epoch from j.finished_at - j.started_at)`;
  const buckets = RUN_SECONDS_BUCKETS.map((le, i) => `count(*) filter (where ${ran} and ${secs} <= ${le})::int as le_${i}`).join(",\n      ");
  return {
    // One pass over the table: a status view is read rarely and must not need its own indexes.
    // Queues someone configured (paused, limits) are listed too, with or without jobs.
    queues: `
      with t as (select now() as now),
      s as (
        select j.queue,
          ${STATE_COUNTS},
          (extract(epoch from t.now - min(j.run_at) filter (where j.status = 'queued' and j.run_at <= t.now)) * 1000)::float8
            as oldest_waiting_ms,
          count(*) filter (where j.finished_at > t.now - interval '1 minute')::int as finished_last_minute
        from ${q}.jobs j, t
        group by j.queue, t.now
      )
      select coalesce(s.queue, c.name) as queue,
        coalesce(s.pending, 0) as pending, coalesce(s.waiting, 0) as waiting, coalesce(s.scheduled, 0) as scheduled,
        coalesce(s.running, 0) as running, coalesce(s.completed, 0) as completed, coalesce(s.failed, 0) as failed,
        coalesce(s.cancelled, 0) as cancelled, s.oldest_waiting_ms, coalesce(s.finished_last_minute, 0) as finished_last_minute,
        coalesce(c.paused, false) as paused, c.concurrency, c.group_concurrency, c.rate_max, c.rate_interval_ms
      from s full join ${q}.queues c on c.name = s.queue
      order by 1`,
    // The live part only, for pages refreshed every few seconds: queued and running jobs
    // through the partial indexes whose predicates these reads match (the claim's and
    // the running jobs'), never the finished jobs that are most of the table.
    queueStates: `
      with t as (select now() as now),
      live as (
        select j.queue,
          count(*) filter (where j.run_at <= t.now)::int as waiting,
          count(*) filter (where j.run_at > t.now)::int as scheduled,
          0 as running,
          min(j.run_at) filter (where j.run_at <= t.now) as oldest
        from ${q}.jobs j, t where j.status = 'queued' group by j.queue
        union all
        select j.queue, 0, 0, count(*)::int, null from ${q}.jobs j where j.status = 'running' group by j.queue
      ),
      s as (select queue, sum(waiting)::int as waiting, sum(scheduled)::int as scheduled, sum(running)::int as running, min(oldest) as oldest
            from live group by queue)
      select coalesce(s.queue, c.name) as queue,
        coalesce(s.waiting, 0) as waiting, coalesce(s.scheduled, 0) as scheduled, coalesce(s.running, 0) as running,
        (extract(epoch from (select now from t) - s.oldest) * 1000)::float8 as oldest_waiting_ms,
        coalesce(c.paused, false) as paused, c.concurrency, c.group_concurrency, c.rate_max, c.rate_interval_ms
      from s full join ${q}.queues c on c.name = s.queue
      order by 1`,
    workers: `
      select w.id, to_json(w.queues) as queues, to_json(w.tasks) as tasks, w.concurrency, w.meta, w.started_at, w.heartbeat_at,
        (extract(epoch from now() - w.heartbeat_at) * 1000)::float8 as heartbeat_age_ms,
        (select count(*) from ${q}.jobs j where j.worker_id = w.id and j.status = 'running')::int as running
      from ${q}.workers w
      order by w.started_at, w.id`,
    metrics: `
      with t as (select now() as now)
      select j.queue,
        ${STATE_COUNTS},
        coalesce(extract(epoch from t.now - min(j.run_at) filter (where j.status = 'queued' and j.run_at <= t.now)), 0)::float8 as oldest_waiting_s,
        coalesce(sum(jsonb_array_length(j.errors)), 0)::int8 as attempt_errors,
        count(*) filter (where ${ran})::int as run_count,
        coalesce(sum(${secs}) filter (where ${ran}), 0)::float8 as run_sum,
        ${buckets}
      from ${q}.jobs j, t
      group by j.queue, t.now
      order by j.queue`,
    probe: `select 1 from ${q}.jobs limit 1`,
    notify: `select pg_notify($1, $2)`,
    // A notification passed on by a worker: if the commit is lost in a crash, the sweep covers it.
    pass: `select set_config('synchronous_commit', 'off', true), pg_notify($1, $2)`,
  };
}

/** A queue's jobs by state (the columns of STATE_COUNTS). */
export interface StateCounts {
  /** Jobs of a flow or batch waiting for their parents. */
  pending: number;
  waiting: number;
  scheduled: number;
  running: number;
  completed: number;
  failed: number;
  cancelled: number;
}

export interface QueueSummaryRow extends StateCounts {
  queue: string;
  oldest_waiting_ms: number | null;
  finished_last_minute: number;
  paused: boolean;
  concurrency: number | null;
  group_concurrency: number | null;
  rate_max: number | null;
  rate_interval_ms: number | null;
}

export interface QueueStateRow {
  queue: string;
  waiting: number;
  scheduled: number;
  running: number;
  oldest_waiting_ms: number | null;
  paused: boolean;
  concurrency: number | null;
  group_concurrency: number | null;
  rate_max: number | null;
  rate_interval_ms: number | null;
}

export interface WorkerSummaryRow {
  id: string;
  queues: string[];
  tasks: string[];
  concurrency: number;
  meta: Record<string, unknown>;
  started_at: Date;
  heartbeat_at: Date;
  heartbeat_age_ms: number;
  running: number;
}

/** Per queue: jobs by state, the oldest waiting job's age, and the run-time histogram (`le_0`... by RUN_SECONDS_BUCKETS). */
export interface MetricsRow extends StateCounts {
  queue: string;
  oldest_waiting_s: number;
  attempt_errors: string | number;
  run_count: number;
  run_sum: number;
  [bucket: `le_${number}`]: number;
}

export function statusOps(c: DbContext, t: ReturnType<typeof statusSql>) {
  return {
    async queueSummaries(): Promise<QueueSummaryRow[]> {
      return (await run(c, t.queues)) as unknown as QueueSummaryRow[];
    },
    async queueStates(): Promise<QueueStateRow[]> {
      return (await run(c, t.queueStates)) as unknown as QueueStateRow[];
    },
    async workerSummaries(): Promise<WorkerSummaryRow[]> {
      return (await run(c, t.workers)) as unknown as WorkerSummaryRow[];
    },
    async metrics(): Promise<MetricsRow[]> {
      return (await run(c, t.metrics)) as unknown as MetricsRow[];
    },
    /** A cheap read of the jobs table: is the database there, and migrated. Never prepared. */
    async probe(): Promise<void> {
      await send(c, () => c.handle.unsafe(t.probe));
    },
    /** Sends a message to workers on the control channel. */
    async notifyControl(payload: string): Promise<void> {
      await send(c, () => c.handle.unsafe(t.notify, [CONTROL_CHANNEL, payload]));
    },
    /** Passes a job_enqueued notification on to the next worker (worker/roster.ts). */
    async notifyPass(payload: string): Promise<void> {
      await send(c, () => c.handle.unsafe(t.pass, [ENQUEUED_CHANNEL, payload]));
    },
  };
}
