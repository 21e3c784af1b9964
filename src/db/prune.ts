import { type DbContext, inTx, run, TRY_LOCK } from "./context.ts";

/**
 * Deletes a batch of finished jobs past their retention, oldest ids first,
 * skipping rows someone holds. Only the worker holding the prune lock does it,
 * so several workers do not scan the same rows.
 */
export function pruneSql(q: string) {
  return {
    lock: TRY_LOCK,
    batch: `
      with t as (select coalesce($4::timestamptz, now()) as now),
      doomed as (
        select j.id from ${q}.jobs j, t
        where ((j.status = 'completed' and j.finished_at < t.now - $1::bigint * interval '1 millisecond')
           or (j.status in ('failed', 'cancelled') and j.finished_at < t.now - $2::bigint * interval '1 millisecond'))
          -- a parent stays while a child has not completed: the child reads its
          -- result when it runs, and a failed or cancelled child may be retried
          and not (j.has_children and exists (
            select 1 from ${q}.job_deps d join ${q}.jobs c on c.id = d.child_id
             where d.parent_id = j.id and c.status <> 'completed'))
          -- a batch's jobs go together: pruned one by one, a batch whose failed job
          -- went first would read as completed (its state comes from the jobs left)
          and not (j.batch_id is not null and exists (
            select 1 from ${q}.jobs b
             where b.batch_id = j.batch_id
               and not ((b.status = 'completed' and b.finished_at < t.now - $1::bigint * interval '1 millisecond')
                     or (b.status in ('failed', 'cancelled') and b.finished_at < t.now - $2::bigint * interval '1 millisecond'))))
        order by j.id
        limit $3
        for update of j skip locked
      ),
      gone as (delete from ${q}.jobs j using doomed where j.id = doomed.id returning j.id, j.batch_id),
      logs as (delete from ${q}.job_logs l using gone where l.job_id = gone.id),
      edges as (delete from ${q}.job_deps d using gone where d.child_id = gone.id or d.parent_id = gone.id)
      select count(*)::int as n, coalesce(string_agg(distinct gone.batch_id::text, ','), '') as batches from gone`,
    // Batches whose last job was pruned go with it.
    batches: `
      delete from ${q}.batches b
       where b.id = any(string_to_array($1::text, ',')::bigint[]) and not exists (select 1 from ${q}.jobs j where j.batch_id = b.id)`,
  };
}

export interface PruneBatchParams {
  completedMs: number;
  failedMs: number;
  limit: number;
  now: Date | null;
}

export function pruneOps(c: DbContext, t: ReturnType<typeof pruneSql>) {
  return {
    /** Deletes up to `limit` finished jobs past retention; -1 when another prune holds the lock. */
    jobPruneBatch(p: PruneBatchParams): Promise<number> {
      return inTx(c, async (tx) => {
        const [lock] = await run(tx, t.lock, [`pgpulse:prune:${c.schema}`]);
        if (!lock!.locked) return -1;
        const [row] = await run(tx, t.batch, [p.completedMs, p.failedMs, p.limit, p.now]);
        const batches = row!.batches as string;
        if (batches !== "") await run(tx, t.batches, [batches]);
        return row!.n as number;
      });
    },
  };
}
