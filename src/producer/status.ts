import type { SqlHandle } from "../db/connection.ts";

/** One queue's state, as operators and dashboards see it. */
export interface QueueSummary {
  queue: string;
  /** Queued and runnable now. */
  waiting: number;
  /** Queued for later (delayed, or waiting out a retry backoff). */
  scheduled: number;
  running: number;
  completed: number;
  failed: number;
  cancelled: number;
  /** How long the oldest runnable job has waited, in ms; null when none waits. */
  oldestWaitingMs: number | null;
  /** Jobs that reached a final state in the last minute. */
  finishedLastMinute: number;
}

/** A live worker process, as recorded by its heartbeat. */
export interface WorkerSummary {
  id: string;
  queues: string[];
  tasks: string[];
  concurrency: number;
  running: number;
  meta: Record<string, unknown>;
  startedAt: Date;
  heartbeatAt: Date;
  heartbeatAgeMs: number;
}

/** A queue's jobs by state, as select-list columns over jobs `j` and `t.now`. */
export const STATE_COUNTS = `
  count(*) filter (where j.status = 'queued' and j.run_at <= t.now)::int as waiting,
  count(*) filter (where j.status = 'queued' and j.run_at > t.now)::int as scheduled,
  count(*) filter (where j.status = 'running')::int as running,
  count(*) filter (where j.status = 'completed')::int as completed,
  count(*) filter (where j.status = 'failed')::int as failed,
  count(*) filter (where j.status = 'cancelled')::int as cancelled`;

export function statusSql(q: string) {
  return {
    // One pass over the table: a status view is read rarely and must not need its own indexes.
    queues: `
      with t as (select now() as now)
      select j.queue,
        ${STATE_COUNTS},
        (extract(epoch from t.now - min(j.run_at) filter (where j.status = 'queued' and j.run_at <= t.now)) * 1000)::float8
          as oldest_waiting_ms,
        count(*) filter (where j.finished_at > t.now - interval '1 minute')::int as finished_last_minute
      from ${q}.jobs j, t
      group by j.queue, t.now
      order by j.queue`,
    workers: `
      select w.id, to_json(w.queues) as queues, to_json(w.tasks) as tasks, w.concurrency, w.meta, w.started_at, w.heartbeat_at,
        (extract(epoch from now() - w.heartbeat_at) * 1000)::float8 as heartbeat_age_ms,
        (select count(*) from ${q}.jobs j where j.worker_id = w.id and j.status = 'running')::int as running
      from ${q}.workers w
      order by w.started_at, w.id`,
  };
}

export async function listQueues(sql: SqlHandle, text: string): Promise<QueueSummary[]> {
  const rows = await sql.unsafe(text, [], { prepare: true });
  return rows.map((r) => ({
    queue: r.queue,
    waiting: r.waiting,
    scheduled: r.scheduled,
    running: r.running,
    completed: r.completed,
    failed: r.failed,
    cancelled: r.cancelled,
    oldestWaitingMs: r.oldest_waiting_ms === null ? null : Math.round(r.oldest_waiting_ms),
    finishedLastMinute: r.finished_last_minute,
  }));
}

export async function listWorkers(sql: SqlHandle, text: string): Promise<WorkerSummary[]> {
  const rows = await sql.unsafe(text, [], { prepare: true });
  return rows.map((r) => ({
    id: r.id,
    queues: r.queues,
    tasks: r.tasks,
    concurrency: r.concurrency,
    running: r.running,
    meta: r.meta,
    startedAt: r.started_at,
    heartbeatAt: r.heartbeat_at,
    heartbeatAgeMs: Math.round(r.heartbeat_age_ms),
  }));
}
