import { notifyEnqueued } from "./channels.ts";
import { type DbContext, inTx, run, TRY_LOCK } from "./context.ts";

/**
 * The SET list for a running job whose worker is gone. A job that started (it
 * has a started_at) goes back to the queue to run again at once, the lost
 * attempt counted and recorded as a WorkerLostError; failed when that was its
 * last attempt. A job the worker had claimed ahead and not started (no
 * started_at) goes back without the attempt counting, the first time: a
 * WorkerLostError marked `unstarted` records it. Should that job come back
 * unstarted again, it counts like any lost attempt, so a job that kills its
 * worker before its start is written still runs out of attempts. Either way it
 * is cancelled when a cancel was asked for. Expects `j` (the job) and `t.now`
 * in scope.
 */
export function lostJobSet(q: string, message: string): string {
  const spared = `(j.started_at is null and not j.errors @> '[{"unstarted": true}]')`;
  const final = `j.cancel_requested_at is not null or (not ${spared} and j.attempts >= j.max_attempts)`;
  return `
    status = (case when j.cancel_requested_at is not null then 'cancelled'
                   when not ${spared} and j.attempts >= j.max_attempts then 'failed'
                   else 'queued' end)::${q}.job_status,
    errors = j.errors || jsonb_build_array(jsonb_build_object(
      'attempt', j.attempts, 'at', t.now, 'name', 'WorkerLostError',
      'message', ${message} || case when j.started_at is null then ' (it had not started it)' else '' end,
      'worker', j.worker_id)
      || case when j.started_at is null then '{"unstarted": true}'::jsonb else '{}'::jsonb end),
    attempts = case when ${spared} then greatest(j.attempts - 1, 0) else j.attempts end,
    run_at = least(j.run_at, t.now), -- keeps its place in the queue
    finished_at = case when ${final} then t.now end,
    worker_id = null`;
}

/**
 * One reaper pass: declares dead every worker whose heartbeat is older than
 * staleAfterMs, puts back the running jobs of dead workers and any running
 * job whose worker row is missing, and announces the requeued ones. A
 * transaction-scoped advisory lock taken with try (never wait) lets one
 * worker do it at a time, without electing anyone.
 */
export function reaperSql(q: string) {
  return {
    lock: TRY_LOCK,
    reap: `
      with t as (select coalesce($2::timestamptz, now()) as now),
      dead as (
        delete from ${q}.workers w using t
        where w.heartbeat_at < t.now - $1::bigint * interval '1 millisecond'
          and w.id is distinct from $4::text -- the worker reaping is alive: its lease covers its own doubt
        returning w.id
      ),
      lost as (
        -- the CTE snapshot still shows the rows deleted above, hence both tests
        select j.id from ${q}.jobs j
        where j.status = 'running'
          and (j.worker_id in (select id from dead)
               or not exists (select 1 from ${q}.workers w where w.id = j.worker_id))
        for update of j skip locked
      ),
      back as (
        update ${q}.jobs j set ${lostJobSet(q, `'worker ' || coalesce(j.worker_id, '?') || ' stopped heartbeating while running this job'`)}
        from lost, t
        where j.id = lost.id
        returning j.id, j.status, j.queue, j.run_at, t.now
      ),
      note as (
        select ${notifyEnqueued("$3::text", "array_agg(distinct queue)", "count(*)")}
        from back where status = 'queued' and run_at <= now having count(*) > 0
      )
      select (select coalesce(json_agg(id), '[]') from dead) as workers,
             (select coalesce(json_agg(json_build_object('id', id::text, 'status', status)), '[]') from back) as jobs,
             (select count(*) from note)::integer as notified`,
  };
}

export interface ReapResult {
  /** False when another worker's reaper held the lock, so this pass did nothing. */
  ran: boolean;
  /** Workers declared dead and removed. */
  workers: string[];
  /** Jobs taken back from missing workers, with the state each went to. */
  jobs: { id: string; status: "queued" | "failed" | "cancelled" }[];
}

export function reaperOps(c: DbContext, t: ReturnType<typeof reaperSql>) {
  return {
    /** One reaper pass, unless another worker's is under way. */
    /** `self`: the reaping worker, never declared dead by its own pass. */
    workerReap(p: { staleAfterMs: number; now: Date | null; self?: string | null }): Promise<ReapResult> {
      return inTx(c, async (tx) => {
        const [lock] = await run(tx, t.lock, [`pgpulse:reaper:${c.schema}`]);
        if (!lock!.locked) return { ran: false, workers: [], jobs: [] };
        const [row] = await run(tx, t.reap, [p.staleAfterMs, p.now, c.schema, p.self ?? null]);
        return { ran: true, workers: row!.workers as string[], jobs: row!.jobs as ReapResult["jobs"] };
      });
    },
  };
}
