import { notifyEnqueued } from "./channels.ts";
import { type DbContext, run, runRows } from "./context.ts";
import { lostJobSet } from "./reaper.ts";

/**
 * A worker's lease. The row in `workers` says "these running jobs are mine";
 * refreshing heartbeat_at keeps it valid. The reaper deletes rows whose
 * heartbeat is older than staleAfterMs and puts their jobs back.
 */
export function leaseSql(q: string) {
  return {
    /**
     * Registers the worker. A row with the same id is a previous run of this
     * worker that did not stop cleanly: its running jobs cannot be ours, so
     * they go back to the queue (or fail, when out of attempts) right here.
     */
    register: `
      with t as (select coalesce($6::timestamptz, now()) as now),
      old as (
        update ${q}.jobs j set ${lostJobSet(q, `'worker ' || j.worker_id || ' restarted while running this job'`)}
        from t
        where j.worker_id = $1 and j.status = 'running'
        returning j.id
      )
      insert into ${q}.workers as w (id, queues, tasks, concurrency, meta, started_at, heartbeat_at, listening)
      select $1, array(select jsonb_array_elements_text($2::text::jsonb)), array(select jsonb_array_elements_text($3::text::jsonb)),
        $4, $5::text::jsonb, t.now, t.now, $7 from t
      on conflict (id) do update set queues = excluded.queues, tasks = excluded.tasks,
        concurrency = excluded.concurrency, meta = excluded.meta, listening = excluded.listening,
        started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at
      returning (select count(*) from old)::integer as recovered`,
    /**
     * Refreshes the lease. No row back means the reaper declared this worker
     * dead. The row also carries the running jobs someone asked to cancel (in
     * case their control notification was missed) and every job the database
     * has as running here, as "id:attempt", for the worker to reconcile.
     */
    beat: `
      update ${q}.workers set heartbeat_at = coalesce($2::timestamptz, now())
      where id = $1
      returning
        (select coalesce(json_agg(j.id::text), '[]') from ${q}.jobs j
          where j.worker_id = $1 and j.status = 'running' and j.cancel_requested_at is not null) as cancel,
        (select coalesce(json_agg(j.id::text || ':' || j.attempts), '[]') from ${q}.jobs j
          where j.worker_id = $1 and j.status = 'running') as running`,
    /**
     * The fleet: the workers that LISTEN and whose heartbeat came within $1 ms,
     * with what they serve, for choosing which of them a notification wakes (worker/roster.ts).
     */
    roster: `
      select w.id, to_json(w.queues) as queues, to_json(w.tasks) as tasks from ${q}.workers w
      where w.listening and w.heartbeat_at > coalesce($2::timestamptz, now()) - $1::bigint * interval '1 millisecond'`,
    /**
     * Leaves: gives back any job still marked running for this worker (unrun,
     * the attempt not counted), deletes the row, and announces the jobs.
     */
    unregister: `
      with t as (select coalesce($2::timestamptz, now()) as now),
      back as (
        update ${q}.jobs j set
          status = (case when j.cancel_requested_at is not null then 'cancelled' else 'queued' end)::${q}.job_status,
          attempts = greatest(j.attempts - 1, 0), worker_id = null, run_at = least(j.run_at, t.now), started_at = null,
          finished_at = case when j.cancel_requested_at is not null then t.now end
        from t
        where j.worker_id = $1 and j.status = 'running'
        returning j.queue, j.status
      ),
      gone as (delete from ${q}.workers where id = $1 returning id),
      note as (
        select ${notifyEnqueued("$3::text", "array_agg(distinct queue)", "count(*)")}
        from back where status = 'queued' having count(*) > 0
      )
      select (select count(*) from back)::integer as released, (select count(*) from gone)::integer as removed,
             (select count(*) from note)::integer as notified`,
  };
}

export interface RegisterParams {
  workerId: string;
  queues: readonly string[];
  tasks: readonly string[];
  concurrency: number;
  meta: Record<string, unknown>;
  /** The worker LISTENs, so notifications may be drawn for it. */
  listening: boolean;
  now: Date | null;
}

export interface Beat {
  /** Running jobs here that someone asked to cancel. */
  cancel: string[];
  /** Every job the database has running here, as "id:attempt". */
  running: string[];
}

export interface RosterRow {
  id: string;
  queues: string[];
  tasks: string[];
}

export function leaseOps(c: DbContext, t: ReturnType<typeof leaseSql>) {
  return {
    /** Registers (or re-registers) a worker; returns how many jobs of a previous run of it were taken back. */
    async workerRegister(p: RegisterParams): Promise<number> {
      // (read by position: runJobs of pgpulse/testing registers in the caller's transaction)
      const [row] = await runRows(c, t.register, [
        p.workerId, JSON.stringify(p.queues), JSON.stringify(p.tasks), p.concurrency, JSON.stringify(p.meta), p.now, p.listening,
      ]);
      return Number(row![0]);
    },
    /** Refreshes the lease; null when the worker's row is gone (the reaper declared it dead). */
    async workerBeat(workerId: string, now: Date | null): Promise<Beat | null> {
      const rows = await run(c, t.beat, [workerId, now]);
      return rows.length === 0 ? null : { cancel: rows[0]!.cancel as string[], running: rows[0]!.running as string[] };
    },
    /** The workers that heartbeat within withinMs. */
    async workerRoster(withinMs: number, now: Date | null): Promise<RosterRow[]> {
      return (await run(c, t.roster, [withinMs, now])) as unknown as RosterRow[];
    },
    /** Gives back the worker's running jobs unrun and deletes its row. */
    async workerUnregister(workerId: string, now: Date | null): Promise<void> {
      await run(c, t.unregister, [workerId, now, c.schema]);
    },
  };
}
