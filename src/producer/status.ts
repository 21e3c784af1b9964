import type { Db } from "../db/db.ts";
import type { StateCounts } from "../db/status.ts";

/**
 * One queue's state, as operators and dashboards see it: its jobs by state
 * (`pending` wait for their parents in a flow; `waiting` are runnable now; `scheduled` are queued for later, delayed or
 * waiting out a retry backoff).
 */
export interface QueueSummary extends StateCounts {
  queue: string;
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

export async function listQueues(db: Pick<Db, "queueSummaries">): Promise<QueueSummary[]> {
  const rows = await db.queueSummaries();
  return rows.map((r) => ({
    queue: r.queue,
    pending: r.pending,
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

export async function listWorkers(db: Pick<Db, "workerSummaries">): Promise<WorkerSummary[]> {
  const rows = await db.workerSummaries();
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
