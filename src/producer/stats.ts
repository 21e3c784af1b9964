import * as v from "valibot";
import type { Db } from "../db/db.ts";
import { STATS_RETENTION_MS } from "../db/stats.ts";
import { int, name, parseOrThrow } from "./enqueue-options.ts";

/** Most minutes one read returns: the figures are kept a day. */
export const STATS_MINUTES_MAX = STATS_RETENTION_MS / 60_000;

export interface QueueStatsOptions {
  /** One queue's figures; by default every queue that has some in the window. */
  queue?: string;
  /** How many minutes, ending with the current one. @default 60, at most 1440 */
  minutes?: number;
}

/** One queue's figures for one minute. */
export interface QueueStatsPoint {
  /** The minute's start (database clock). */
  at: Date;
  /** Attempts workers ended in the minute: the job completed, failed for good, or will be retried. */
  completed: number;
  failed: number;
  retried: number;
  /** Attempts started in the minute. */
  started: number;
  /** Average and largest of started_at - run_at over those starts, in ms; null without starts. */
  waitMsAvg: number | null;
  waitMsMax: number | null;
  /** Jobs runnable (queued, run_at passed) and running when the minute was sampled; null when it was not. */
  waiting: number | null;
  running: number | null;
}

export interface QueueStats {
  /** The first minute's start, and the end of the current (last) minute. */
  from: Date;
  to: Date;
  /** Per queue, by name: one point per minute, oldest first, every minute of the window. */
  queues: { queue: string; points: QueueStatsPoint[] }[];
}

const optionsSchema = v.strictObject(
  {
    queue: v.optional(name("queue")),
    minutes: v.optional(int("minutes", 1, STATS_MINUTES_MAX)),
  },
  "unknown option; the options are queue and minutes",
);

/**
 * Per-queue figures by the minute over the last `minutes` minutes, from the
 * rollup workers keep (sql/000007). A minute without counts has zeros (no
 * worker ended or started anything of the queue then); waiting and running are
 * null for a minute nobody sampled (no worker ran), 0 for a queue the sample
 * found nothing of.
 */
export async function queueStats(db: Pick<Db, "statsRead">, options: QueueStatsOptions = {}, now: Date | null = null): Promise<QueueStats> {
  const o = parseOrThrow(optionsSchema, options, "INVALID_INPUT", "");
  const minutes = o.minutes ?? 60;
  const read = await db.statsRead(minutes, o.queue ?? null, now);
  const first = read.nowMs - (minutes - 1) * 60_000;
  const sampled = new Set(read.sampled);
  const byQueue = new Map<string, QueueStatsPoint[]>();
  const blank = (queue: string) => {
    let points = byQueue.get(queue);
    if (!points) {
      points = Array.from({ length: minutes }, (_, i) => {
        const at = first + i * 60_000;
        const seen = sampled.has(at) ? 0 : null;
        return { at: new Date(at), completed: 0, failed: 0, retried: 0, started: 0, waitMsAvg: null, waitMsMax: null, waiting: seen, running: seen };
      });
      byQueue.set(queue, points);
    }
    return points;
  };
  if (o.queue !== undefined) blank(o.queue);
  for (const [atMs, queue, completed, failed, retried, started, waitSum, waitMax, waiting, running] of read.rows) {
    const i = Math.round((Number(atMs) - first) / 60_000);
    const point = blank(queue)[i];
    if (!point) continue;
    Object.assign(point, {
      completed, failed, retried, started,
      waitMsAvg: started > 0 ? Number(waitSum) / started : null,
      waitMsMax: started > 0 && waitMax !== null ? Number(waitMax) : null,
      waiting: waiting ?? point.waiting,
      running: running ?? point.running,
    });
  }
  const queues = [...byQueue].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([queue, points]) => ({ queue, points }));
  return { from: new Date(first), to: new Date(read.nowMs + 60_000), queues };
}
