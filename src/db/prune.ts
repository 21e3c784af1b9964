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
        where (j.status = 'completed' and j.finished_at < t.now - $1::bigint * interval '1 millisecond')
           or (j.status in ('failed', 'cancelled') and j.finished_at < t.now - $2::bigint * interval '1 millisecond')
        order by j.id
        limit $3
        for update of j skip locked
      )
      delete from ${q}.jobs j using doomed where j.id = doomed.id`,
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
        return (await run(tx, t.batch, [p.completedMs, p.failedMs, p.limit, p.now])).count;
      });
    },
  };
}
