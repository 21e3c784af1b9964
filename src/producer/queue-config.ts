import * as v from "valibot";
import type { SqlHandle } from "../db/connection.ts";
import { parseOrThrow } from "./enqueue-options.ts";

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

export const queueNameSchema = v.pipe(v.string("queue must be a string"), v.minLength(1, "queue must not be empty"), v.maxLength(128));

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

export function queueConfigSql(q: string, schema: string) {
  // A change can let more jobs start: announce the queue so waiting workers claim.
  const announce = (upsert: string) => `
      with x as (${upsert} returning *),
      n as (
        select pg_notify('job_enqueued', json_build_object('schema', '${schema}'::text, 'queues', json_build_array(x.name))::text)
        from x where not x.paused
      )
      select x.*, (select count(*) from n) as notified from x`;
  return {
    // Only the limits given change; the others keep their value.
    configure: announce(`
      insert into ${q}.queues as c (name, concurrency, group_concurrency, rate_max, rate_interval_ms)
      values ($1, $3::integer, $5::integer, $7::integer, $8::integer)
      on conflict (name) do update set
        concurrency = case when $2::boolean then excluded.concurrency else c.concurrency end,
        group_concurrency = case when $4::boolean then excluded.group_concurrency else c.group_concurrency end,
        rate_max = case when $6::boolean then excluded.rate_max else c.rate_max end,
        rate_interval_ms = case when $6::boolean then excluded.rate_interval_ms else c.rate_interval_ms end,
        updated_at = now()`),
    pause: announce(`
      insert into ${q}.queues as c (name, paused) values ($1, $2)
      on conflict (name) do update set paused = excluded.paused, updated_at = now()`),
    get: `select * from ${q}.queues where name = $1`,
  };
}

export type QueueConfigSql = ReturnType<typeof queueConfigSql>;

export async function configureQueue(sql: SqlHandle, text: QueueConfigSql, name: string, limits: QueueLimits): Promise<QueueConfig> {
  parseOrThrow(queueNameSchema, name, "INVALID_INPUT", "queue");
  const l = parseOrThrow(limitsSchema, limits, "INVALID_INPUT", "");
  const [row] = await sql.unsafe(
    text.configure,
    [
      name,
      l.concurrency !== undefined, l.concurrency ?? null,
      l.groupConcurrency !== undefined, l.groupConcurrency ?? null,
      l.rateLimit !== undefined, l.rateLimit?.max ?? null, l.rateLimit?.intervalMs ?? null,
    ],
    { prepare: true },
  );
  return configFromRow(row);
}

export async function setPaused(sql: SqlHandle, text: QueueConfigSql, name: string, paused: boolean): Promise<QueueConfig> {
  parseOrThrow(queueNameSchema, name, "INVALID_INPUT", "queue");
  const [row] = await sql.unsafe(text.pause, [name, paused], { prepare: true });
  return configFromRow(row);
}

export function configFromRow(row: Record<string, any> | undefined, name = ""): QueueConfig {
  if (!row) return { queue: name, paused: false, concurrency: null, groupConcurrency: null, rateLimit: null };
  return {
    queue: row.name,
    paused: row.paused,
    concurrency: row.concurrency,
    groupConcurrency: row.group_concurrency,
    rateLimit: row.rate_max === null ? null : { max: row.rate_max, intervalMs: row.rate_interval_ms },
  };
}
