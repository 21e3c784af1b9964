import * as v from "valibot";
import type { Db } from "../db/db.ts";
import type { QueueRow } from "../db/queues.ts";
import { name, parseOrThrow } from "./enqueue-options.ts";

/** Limits a queue keeps across every worker. `null` removes a limit. */
export interface QueueLimits {
  /** Most jobs of the queue running at once, across all workers. */
  concurrency?: number | null;
  /** Most jobs of one group (the `group` enqueue option) running at once. */
  groupConcurrency?: number | null;
  /** At most `max` job starts in any `intervalMs`, across all workers. */
  rateLimit?: { max: number; intervalMs: number } | null;
}

export interface QueueConfig {
  queue: string;
  paused: boolean;
  concurrency: number | null;
  groupConcurrency: number | null;
  rateLimit: { max: number; intervalMs: number } | null;
}

const INT4_MAX = 2_147_483_647;
const positive = (what: string) =>
  v.nullable(v.pipe(v.number(`${what} must be a number`), v.integer(`${what} must be an integer`), v.minValue(1, `${what} must be at least 1`), v.maxValue(INT4_MAX)));

const queueNameSchema = name("queue");

/** Checks a queue's name as given to the queue's settings; returns it. */
export function checkQueueName(queue: string): string {
  return parseOrThrow(queueNameSchema, queue, "INVALID_INPUT", "queue");
}

const limitsSchema = v.strictObject(
  {
    concurrency: v.optional(positive("concurrency")),
    groupConcurrency: v.optional(positive("groupConcurrency")),
    rateLimit: v.optional(
      v.nullable(v.strictObject({ max: v.nonNullable(positive("rateLimit.max")), intervalMs: v.nonNullable(positive("rateLimit.intervalMs")) })),
    ),
  },
  "unknown limit; the limits are concurrency, groupConcurrency and rateLimit",
);

/** Sets a queue's limits; limits left out keep their value, `null` removes one. */
export async function configureQueue(db: Pick<Db, "queueConfigure">, name: string, limits: QueueLimits): Promise<QueueConfig> {
  checkQueueName(name);
  const l = parseOrThrow(limitsSchema, limits, "INVALID_INPUT", "");
  return configFromRow(await db.queueConfigure(name, l as QueueLimits));
}

export async function setPaused(db: Pick<Db, "queueSetPaused">, name: string, paused: boolean): Promise<QueueConfig> {
  checkQueueName(name);
  return configFromRow(await db.queueSetPaused(name, paused));
}

export function configFromRow(row: QueueRow | null | undefined, name = ""): QueueConfig {
  if (!row) return { queue: name, paused: false, concurrency: null, groupConcurrency: null, rateLimit: null };
  return {
    queue: row.name,
    paused: row.paused,
    concurrency: row.concurrency,
    groupConcurrency: row.group_concurrency,
    rateLimit: row.rate_max === null || row.rate_interval_ms === null ? null : { max: row.rate_max, intervalMs: row.rate_interval_ms },
  };
}
