import { type DbContext, inTx, run } from "./context.ts";

/** How long per-minute figures are kept: the worker that samples deletes older rows. */
export const STATS_RETENTION_MS = 86_400_000;

/**
 * Per-queue figures by the minute (sql/000007): counts workers add, a sample of
 * waiting and running jobs once a minute, and the read for the charts.
 */
export function statsSql(q: string) {
  return {
    /**
     * Adds a worker's counts. Each row covers the attempts of one queue in one
     * second of the worker's monotonic clock, `age_ms` before this statement:
     * the minute is the database's (now() - age), so a worker's wall clock does
     * not matter. Waits come as d = run_at - start (worker's reckoning) against
     * $2, the worker's reckoning of this moment: the database's now() - $2 - d is
     * started_at - run_at in its own clock.
     */
    record: `
      with t as (select coalesce($3::timestamptz, now()) as now),
      r as (
        select date_trunc('minute', t.now - x.age_ms * interval '1 millisecond') as minute, x.queue,
          x.completed, x.failed, x.retried, x.started,
          x.started * (extract(epoch from t.now) * 1000 - $2::float8) - x.d_sum as wait_sum,
          case when x.started > 0 then extract(epoch from t.now) * 1000 - $2::float8 - x.d_min end as wait_max
        from t, jsonb_to_recordset($1::text::jsonb)
          as x(queue text, age_ms float8, completed integer, failed integer, retried integer, started integer, d_sum float8, d_min float8)
      )
      insert into ${q}.queue_stats as s (minute, queue, completed, failed, retried, started, wait_ms_sum, wait_ms_max)
      select minute, queue, sum(completed), sum(failed), sum(retried), sum(started),
        greatest(0, round(sum(wait_sum)))::bigint, greatest(0, round(max(wait_max)))::bigint
      from r group by minute, queue
      on conflict (minute, queue) do update set
        completed = s.completed + excluded.completed,
        failed = s.failed + excluded.failed,
        retried = s.retried + excluded.retried,
        started = s.started + excluded.started,
        wait_ms_sum = s.wait_ms_sum + excluded.wait_ms_sum,
        wait_ms_max = greatest(s.wait_ms_max, excluded.wait_ms_max)`,
    /** Takes this minute for sampling: a row back means nobody had. */
    take: `
      insert into ${q}.stats_samples (minute, sampled_at, worker_id)
      select date_trunc('minute', t.now), t.now, $2 from (select coalesce($1::timestamptz, now()) as now) t
      on conflict (minute) do nothing
      returning minute`,
    /** Waiting and running jobs per queue, as of now, from the queued and running jobs only. */
    sample: `
      with t as (select coalesce($2::timestamptz, now()) as now),
      live as (
        -- two reads that each match a partial index's predicate (the claim's, the running jobs'),
        -- so that the finished jobs, most of the table, are never read
        select j.queue, count(*) filter (where j.run_at <= t.now)::integer as waiting, 0 as running
        from ${q}.jobs j, t where j.status = 'queued' group by j.queue
        union all
        select j.queue, 0, count(*)::integer from ${q}.jobs j where j.status = 'running' group by j.queue
      )
      insert into ${q}.queue_stats as s (minute, queue, waiting, running)
      select $1::timestamptz, queue, sum(waiting)::integer, sum(running)::integer from live group by queue
      on conflict (minute, queue) do update set waiting = excluded.waiting, running = excluded.running`,
    expire: `
      with gone as (delete from ${q}.queue_stats where minute < $1::timestamptz - $2::bigint * interval '1 millisecond')
      delete from ${q}.stats_samples where minute < $1::timestamptz - $2::bigint * interval '1 millisecond'`,
    /**
     * The last $1 minutes (this one included) of one queue ($2) or every queue,
     * and which of those minutes were sampled, in one round trip. Reads a range
     * of each table's primary key: at most $1 rows per queue.
     */
    read: `
      with t as (select date_trunc('minute', coalesce($3::timestamptz, now())) as now),
      f as (select t.now, t.now - ($1::integer - 1) * interval '1 minute' as since from t)
      select (extract(epoch from t.now) * 1000)::float8 as now_ms,
        (select coalesce(json_agg(json_build_array(
                  extract(epoch from s.minute) * 1000, s.queue, s.completed, s.failed, s.retried, s.started,
                  s.wait_ms_sum, s.wait_ms_max, s.waiting, s.running) order by s.queue, s.minute), '[]')
           from ${q}.queue_stats s, f
          where s.minute between f.since and f.now and ($2::text is null or s.queue = $2::text)) as rows,
        (select coalesce(json_agg(extract(epoch from m.minute) * 1000 order by m.minute), '[]')
           from ${q}.stats_samples m, f where m.minute between f.since and f.now) as sampled
      from t`,
  };
}

/** One queue's attempts in one second of a worker's clock, `ageMs` before the write. */
export interface StatsCountRow {
  queue: string;
  age_ms: number;
  completed: number;
  failed: number;
  retried: number;
  started: number;
  /** Sum, over the starts, of run_at - start in the worker's reckoning (ms). */
  d_sum: number;
  /** The least of those; Infinity-free: 0 when there were no starts. */
  d_min: number;
}

/**
 * A row of queue_stats as the read returns it: [minute (ms since the epoch), queue, completed, failed,
 * retried, started, wait_ms_sum, wait_ms_max, waiting, running].
 */
export type QueueStatsTuple = [number, string, number, number, number, number, number, number | null, number | null, number | null];

export interface StatsRead {
  /** The current minute, ms since the epoch (database clock). */
  nowMs: number;
  rows: QueueStatsTuple[];
  /** The minutes sampled (ms since the epoch), oldest first. */
  sampled: number[];
}

export function statsOps(c: DbContext, t: ReturnType<typeof statsSql>) {
  return {
    /** Adds counts a worker kept; `refMs` is the worker's reckoning of the database's clock now (see statsSql.record). */
    async statsRecord(rows: readonly StatsCountRow[], refMs: number, now: Date | null): Promise<void> {
      if (rows.length === 0) return;
      await run(c, t.record, [JSON.stringify(rows), refMs, now]);
    },
    /**
     * Samples the waiting and running jobs of every queue for this minute, unless
     * someone did already; deletes figures older than retentionMs. The minute
     * sampled, or null when it was taken.
     */
    statsSample(workerId: string, retentionMs: number, now: Date | null): Promise<Date | null> {
      return inTx(c, async (tx) => {
        const [taken] = await run(tx, t.take, [now, workerId]);
        if (!taken) return null;
        const minute = taken.minute as Date;
        await run(tx, t.sample, [minute, now]);
        await run(tx, t.expire, [minute, retentionMs]);
        return minute;
      });
    },
    /** The last `minutes` minutes of figures, of one queue or all; `now` stands in for the database's clock (tests). */
    async statsRead(minutes: number, queue: string | null, now: Date | null): Promise<StatsRead> {
      const [row] = await run(c, t.read, [minutes, queue, now]);
      return { nowMs: Number(row!.now_ms), rows: row!.rows as QueueStatsTuple[], sampled: (row!.sampled as number[]).map(Number) };
    },
  };
}
