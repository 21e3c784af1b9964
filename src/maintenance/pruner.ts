import * as v from "valibot";
import type postgres from "postgres";
import { parseOrThrow } from "../producer/enqueue-options.ts";

/** How long finished jobs are kept. */
export interface RetentionOptions {
  /** Completed jobs older than this (since they finished) are deleted. @default 86_400_000 (one day) */
  completedMs?: number;
  /** Failed and cancelled jobs older than this are deleted. @default 1_209_600_000 (14 days) */
  failedMs?: number;
}

export const RETENTION_COMPLETED_MS_DEFAULT = 86_400_000;
export const RETENTION_FAILED_MS_DEFAULT = 14 * 86_400_000;
/** Rows one prune statement deletes at most: short statements, short locks. */
export const PRUNE_BATCH = 1000;

const ms = (what: string) => v.optional(v.pipe(v.number(`${what} must be a number`), v.integer(`${what} must be an integer`), v.minValue(0, `${what} must be at least 0`)));
export const retentionSchema = v.strictObject(
  { completedMs: ms("completedMs"), failedMs: ms("failedMs") },
  "unknown option; retention takes completedMs and failedMs",
);

/**
 * Deletes a batch of finished jobs past their retention, oldest ids first,
 * skipping rows someone holds. Only the worker holding the prune lock does it,
 * so several workers do not scan the same rows.
 */
export function pruneSql(q: string) {
  return {
    lock: `select pg_try_advisory_xact_lock(hashtext($1)) as locked`,
    batch: `
      with t as (select coalesce($4::timestamptz, now()) as now),
      doomed as (
        select j.id from ${q}.jobs j, t
        where (j.status = 'completed' and j.finished_at < t.now - $1::bigint * interval '1 millisecond')
           or (j.status in ('failed', 'cancelled') and j.finished_at < t.now - $2::bigint * interval '1 millisecond')
        order by j.id
        limit $3
        for update of j skip locked
      )
      delete from ${q}.jobs j using doomed where j.id = doomed.id`,
  };
}

/** Deletes finished jobs past retention in batches until none are left; returns how many. */
export async function prune(
  sql: postgres.Sql,
  text: ReturnType<typeof pruneSql>,
  schema: string,
  retention: RetentionOptions = {},
  now: Date | null = null,
): Promise<number> {
  const r = parseOrThrow(retentionSchema, retention, "INVALID_INPUT", "");
  const completedMs = r.completedMs ?? RETENTION_COMPLETED_MS_DEFAULT;
  const failedMs = r.failedMs ?? RETENTION_FAILED_MS_DEFAULT;
  let total = 0;
  for (;;) {
    const deleted = await sql.begin(async (tx) => {
      const [lock] = await tx.unsafe(text.lock, [`pgpulse:prune:${schema}`], { prepare: true });
      if (!lock!.locked) return -1;
      const result = await tx.unsafe(text.batch, [completedMs, failedMs, PRUNE_BATCH, now], { prepare: true });
      return result.count;
    });
    if (deleted < 0) return total;
    total += deleted;
    if (deleted < PRUNE_BATCH) return total;
  }
}
