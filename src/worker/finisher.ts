import type postgres from "postgres";
import type { JobStatus } from "../shared/types.ts";

/** How an attempt ended, as the worker reports it. */
export type Outcome = (
  | { kind: "completed"; id: string; attempt: number; result: unknown }
  | { kind: "retry"; id: string; attempt: number; error: ErrorRecord; delayMs: number }
  | { kind: "failed"; id: string; attempt: number; error: ErrorRecord }
  | { kind: "cancelled"; id: string; attempt: number; error: ErrorRecord }
  /** Given back unrun (graceful stop): back to queued, the attempt not counted. */
  | { kind: "released"; id: string; attempt: number }
  /** The handler asked to run again later: back to queued, the attempt not counted. */
  | { kind: "snoozed"; id: string; attempt: number; delayMs: number }
) & {
  /** For a job claimed ahead, whose start the database may not have: when it started (ms since the epoch, database clock). */
  startedMs?: number;
};

export interface ErrorRecord {
  attempt: number;
  name: string;
  message: string;
  stack?: string;
  worker: string;
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
      select pg_notify('job_enqueued', json_build_object('schema', $4::text, 'queues', array_agg(distinct upd.queue))::text)
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

export interface FinishResult {
  /** False when the job was no longer this worker's to finish (reaped, or reclaimed). */
  applied: boolean;
  status: JobStatus | null;
}

interface Pending {
  outcome: Outcome;
  resolve: (r: FinishResult) => void;
}

/**
 * Collects attempt ends for a few milliseconds and writes them together: one
 * round trip for a batch, which is most of a queue's throughput. A failed
 * write is retried with backoff until it lands, so an outcome is never
 * dropped; if the worker dies first, its heartbeat lapses and the reaper
 * puts the jobs back.
 */
export class FinishBatcher {
  #pending: Pending[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #flushing: Promise<void> | undefined;
  #text: string;
  #abandoned = false;

  constructor(
    private sql: postgres.Sql,
    q: string,
    private schema: string,
    private workerId: string,
    private delayMs: number,
    private now: () => Date | null,
    private onError: (error: unknown, retryInMs: number) => void,
    private maxBatch = 500,
  ) {
    this.#text = finishSql(q);
  }

  get size(): number {
    return this.#pending.length;
  }

  add(outcome: Outcome): Promise<FinishResult> {
    return new Promise((resolve) => {
      this.#pending.push({ outcome, resolve });
      if (this.#pending.length >= this.maxBatch) void this.flush();
      else this.#timer ??= setTimeout(() => void this.flush(), this.delayMs);
    });
  }

  /**
   * Stops retrying failed writes: what has not landed is left to the reaper,
   * which puts the jobs back once this worker's row is gone or stale.
   */
  abandon(): void {
    this.#abandoned = true;
  }

  /** Writes everything pending now; resolves when it has all landed. */
  async flush(): Promise<void> {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    while (this.#flushing) await this.#flushing;
    if (this.#pending.length === 0) return;
    const batch = this.#pending.splice(0, this.maxBatch);
    this.#flushing = this.#write(batch).finally(() => (this.#flushing = undefined));
    await this.#flushing;
    if (this.#pending.length > 0) await this.flush();
  }

  async #write(batch: Pending[]): Promise<void> {
    const rows = batch.map(({ outcome: o }) => ({
      id: o.id,
      attempt: o.attempt,
      kind: o.kind,
      result: o.kind === "completed" ? (o.result ?? null) : null,
      error: "error" in o ? o.error : null,
      delay_ms: o.kind === "retry" || o.kind === "snoozed" ? o.delayMs : null,
      started_ms: o.startedMs ?? null,
    }));
    const body = JSON.stringify(rows);
    for (let tries = 0; ; tries++) {
      try {
        const result = await this.sql.unsafe(this.#text, [body, this.workerId, this.now(), this.schema], { prepare: true });
        // keyed by attempt too: a batch can hold a stale attempt's end beside the current one's
        const byAttempt = new Map(result.map((r) => [`${r.id}:${r.attempt}`, r.status as JobStatus]));
        for (const p of batch) {
          const status = byAttempt.get(`${p.outcome.id}:${p.outcome.attempt}`) ?? null;
          p.resolve({ applied: status !== null, status });
        }
        return;
      } catch (error) {
        // An ended pool can never take the write: leave it to the reaper at once.
        if (this.#abandoned || (error as { code?: string }).code === "CONNECTION_ENDED") {
          for (const p of batch) p.resolve({ applied: false, status: null });
          return;
        }
        const wait = Math.min(5000, 50 * 2 ** tries);
        this.onError(error, wait);
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }
}
