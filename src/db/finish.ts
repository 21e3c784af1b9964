import type { JobStatus } from "../shared/types.ts";
import { notifyEnqueued } from "./channels.ts";
import { type DbContext, run } from "./context.ts";

/** One attempt's end, as the finish statement takes it. */
export interface FinishRow {
  id: string;
  attempt: number;
  kind: "completed" | "retry" | "failed" | "cancelled" | "released" | "snoozed";
  result: unknown;
  error: unknown;
  delay_ms: number | null;
  /** For a job claimed ahead: when it really started (ms since the epoch, database clock). */
  started_ms: number | null;
}

/** A running job's progress or start, as the progress statement takes it. */
export interface ProgressRow {
  id: string;
  attempt: number;
  percent: number | null;
  started_ms: number | null;
}

/**
 * Writes many attempts' ends in one statement. Each row is guarded by
 * (id, attempt, worker, running): a worker that lost its jobs to the reaper
 * cannot overwrite what their new owner does. A cancel requested meanwhile
 * wins over a retry. One notification for the statement announces the queues
 * that got runnable jobs back, and the queues with running limits that got a
 * slot free, so a worker held back by the limit claims again at once.
 */
export function finishSql(q: string): string {
  const unrun = `f.kind in ('released', 'snoozed')`;
  const final = `f.kind in ('completed', 'failed', 'cancelled') or (f.kind in ('retry', 'released', 'snoozed') and j.cancel_requested_at is not null)`;
  return `
    with t as (select coalesce($3::timestamptz, now()) as now),
    f as (
      select * from jsonb_to_recordset($1::text::jsonb)
        as f(id bigint, attempt integer, kind text, result jsonb, error jsonb, delay_ms bigint, started_ms float8)
    ),
    upd as (
      update ${q}.jobs j set
        status = (case
          when f.kind = 'completed' then 'completed'
          when f.kind = 'failed' then 'failed'
          when f.kind = 'cancelled' or j.cancel_requested_at is not null then 'cancelled'
          else 'queued' end)::${q}.job_status,
        result = case when f.kind = 'completed' then f.result else j.result end,
        progress = case when f.kind = 'completed' then 100 else j.progress end,
        errors = case when f.error is null then j.errors
                      else j.errors || jsonb_build_array(f.error || jsonb_build_object('at', t.now)) end,
        run_at = case when f.kind in ('retry', 'snoozed') then t.now + f.delay_ms * interval '1 millisecond'
                      when f.kind = 'released' then least(j.run_at, t.now) else j.run_at end,
        attempts = case when ${unrun} then j.attempts - 1 else j.attempts end,
        started_at = case when ${unrun} then null
                          else coalesce(j.started_at, to_timestamp(f.started_ms / 1000)) end,
        finished_at = case when ${final} then t.now else null end,
        worker_id = null
      from f, t
      where j.id = f.id and j.attempts = f.attempt and j.worker_id = $2 and j.status = 'running'
      returning j.id, f.attempt, j.status, j.queue, j.run_at, t.now
    ),
    note as (
      select ${notifyEnqueued("$4::text", "array_agg(distinct upd.queue)")}
      from upd
      where (upd.status = 'queued' and upd.run_at <= upd.now)
         or upd.queue in (select name from ${q}.queues where concurrency is not null or group_concurrency is not null)
      having count(*) > 0
    ),
    -- An end lost in a database crash leaves the job running on this worker,
    -- which gives it back (or the reaper does): it runs again, nothing is lost.
    -- So the write need not wait for its commit to reach disk.
    sync_off as (select set_config('synchronous_commit', 'off', true))
    select upd.id, upd.attempt, upd.status, (select count(*) from note) as notified,
      (select count(*) from sync_off) as sync_off from upd`;
}

/**
 * Writes running jobs' progress, and the start of jobs claimed ahead, in one
 * statement. Neither column is indexed: with the jobs table's fillfactor
 * these are HOT updates.
 */
export function progressSql(q: string): string {
  return `
    update ${q}.jobs j set
      progress = coalesce(f.percent, j.progress),
      started_at = coalesce(j.started_at, to_timestamp(f.started_ms / 1000))
    from jsonb_to_recordset($1::text::jsonb) as f(id bigint, attempt integer, percent smallint, started_ms float8)
    where j.id = f.id and j.attempts = f.attempt and j.worker_id = $2 and j.status = 'running'
      and (j.progress is distinct from coalesce(f.percent, j.progress) or (j.started_at is null and f.started_ms is not null))`;
}

export function finishOps(c: DbContext, t: { finish: string; progress: string }) {
  return {
    /**
     * Writes attempts' ends; returns the status each applied one reached,
     * keyed "id:attempt" (a row not there was no longer this worker's).
     */
    async jobFinishMany(rows: readonly FinishRow[], workerId: string, now: Date | null): Promise<Map<string, JobStatus>> {
      const result = await run(c, t.finish, [JSON.stringify(rows), workerId, now, c.schema]);
      return new Map(result.map((r) => [`${r.id}:${r.attempt}`, r.status as JobStatus]));
    },
    /** Writes progress and starts of jobs still running on this worker. */
    async jobProgressMany(rows: readonly ProgressRow[], workerId: string): Promise<void> {
      await run(c, t.progress, [JSON.stringify(rows), workerId]);
    },
  };
}
