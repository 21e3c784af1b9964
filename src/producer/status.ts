import type { Db } from "../db/db.ts";
import type { StateCounts } from "../db/status.ts";
import type { QueueConfig } from "./queue-config.ts";

/**
 * One queue's state, as operators and dashboards see it: its jobs by state
 * (`pending` wait for their parents in a flow; `waiting` are runnable now; `scheduled` are queued for later, delayed or
 * waiting out a retry backoff), and its configuration (paused, limits).
 */
export interface QueueSummary extends StateCounts, Omit<QueueConfig, "queue"> {
  queue: string;
  /** How long the oldest runnable job has waited, in ms; null when none waits. */
  oldestWaitingMs: number | null;
  /** Jobs that reached a final state in the last minute. */
  finishedLastMinute: number;
}

/**
 * A queue's live state and configuration, read from its queued and running jobs only
 * (cheap whatever the number of finished jobs): `listQueueStates`.
 */
export interface QueueState extends Omit<QueueConfig, "queue"> {
  queue: string;
  /** Queued jobs runnable now. */
  waiting: number;
  /** Queued jobs to run later. */
  scheduled: number;
  running: number;
  /** How long the oldest runnable job has waited, in ms; null when none waits. */
  oldestWaitingMs: number | null;
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

/** Every queue that has jobs or a configuration, by name. */
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
    paused: r.paused,
    concurrency: r.concurrency,
    groupConcurrency: r.group_concurrency,
    rateLimit: r.rate_max === null || r.rate_interval_ms === null ? null : { max: r.rate_max, intervalMs: r.rate_interval_ms },
  }));
}

/** Every queue that has queued or running jobs or a configuration, by name. */
export async function listQueueStates(db: Pick<Db, "queueStates">): Promise<QueueState[]> {
  return (await db.queueStates()).map((r) => ({
    queue: r.queue,
    waiting: r.waiting,
    scheduled: r.scheduled,
    running: r.running,
    oldestWaitingMs: r.oldest_waiting_ms === null ? null : Math.max(0, Math.round(r.oldest_waiting_ms)),
    paused: r.paused,
    concurrency: r.concurrency,
    groupConcurrency: r.group_concurrency,
    rateLimit: r.rate_max === null || r.rate_interval_ms === null ? null : { max: r.rate_max, intervalMs: r.rate_interval_ms },
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
