import { type DbContext, inTx, run, TRY_LOCK } from "./context.ts";

/**
 * The pruner's statements: finished jobs past their retention are deleted a
 * slice at a time, oldest ids first, skipping rows someone holds. Only the
 * worker holding the prune lock does it, so several workers do not scan the
 * same rows.
 *
 * A job is kept while a child of it has not completed (the child reads its
 * result when it runs, and may be retried). A batch's jobs go together, in one
 * transaction, or not at all: a batch's state is read from the jobs it has
 * left, so one whose failed job went first would read as completed. So a slice
 * takes, with the jobs of its first `limit`, every other job of their batches
 * (a batch larger than a slice goes whole in one), and leaves a batch as it is
 * when one of its jobs is not prunable, or when it could not lock each of them:
 * another transaction held one, or one changed since the slice began.
 *
 * Parameters of the slice: $1 and $2 the retention of completed and of failed
 * or cancelled jobs (ms), $3 the slice's size, $4 the time to count from (null:
 * the database's), $5 the id the slice starts after.
 */
export function pruneSql(q: string) {
  const finished = (j: string) => `((${j}.status = 'completed' and ${j}.finished_at < t.now - $1::bigint * interval '1 millisecond')
           or (${j}.status in ('failed', 'cancelled') and ${j}.finished_at < t.now - $2::bigint * interval '1 millisecond'))`;
  // past retention, and no child of it still to complete
  const prunable = (j: string) => `${finished(j)}
          and not (${j}.has_children and exists (
            select 1 from ${q}.job_deps d join ${q}.jobs c on c.id = d.child_id
             where d.parent_id = ${j}.id and c.status <> 'completed'))`;
  return {
    lock: TRY_LOCK,
    // The slice: the first `limit` prunable jobs after $5, read without locking; each batch
    // among them, its size and whether every job of it is prunable; then the slice's jobs
    // of no batch and every job of those batches, locked as they are now (a row changed
    // since the statement began is locked only if it is still prunable). Answers how many
    // the slice read and the last of them, the locked ids, and the sizes, for
    // jobPruneBatch to keep the batches it could not lock whole. (Arrays, not joins,
    // between the parts: a plan unsure of their sizes could compare every pair.)
    slice: `
      with t as (select coalesce($4::timestamptz, now()) as now),
      cand as materialized (
        select j.id, j.batch_id from ${q}.jobs j, t
        where j.id > $5::text::bigint and ${prunable("j")}
        order by j.id
        limit $3
      ),
      sizes as materialized (
        select b.batch_id, count(*)::int as n, bool_and(coalesce(${prunable("b")}, false)) as prunable
        from ${q}.jobs b, t
        where b.batch_id = any(array(select distinct c.batch_id from cand c where c.batch_id is not null))
        group by b.batch_id
      ),
      plain as materialized (
        select j.id from ${q}.jobs j, t
        where j.id = any(array(select c.id from cand c where c.batch_id is null)) and ${prunable("j")}
        for update of j skip locked
      ),
      mates as materialized (
        select j.id, j.batch_id from ${q}.jobs j, t
        where j.batch_id = any(array(select z.batch_id from sizes z where z.prunable)) and ${prunable("j")}
        for update of j skip locked
      )
      select (select count(*) from cand)::int as taken, (select max(c.id)::text from cand c) as last,
        (select coalesce(string_agg(p.id::text, ','), '') from plain p) as plain,
        (select coalesce(string_agg(m.id::text || ':' || m.batch_id::text, ','), '') from mates m) as mates,
        (select coalesce(string_agg(z.batch_id::text || ':' || z.n::text, ','), '') from sizes z where z.prunable) as sizes`,
    // Deletes the locked jobs ($1, comma-separated ids) with their log lines and their edges both ways.
    delete: `
      with gone as (
        delete from ${q}.jobs j where j.id = any(string_to_array($1::text, ',')::bigint[]) returning j.id, j.batch_id
      ),
      logs as (delete from ${q}.job_logs l where l.job_id = any(array(select gone.id from gone))),
      edges as (
        delete from ${q}.job_deps d
         where d.child_id = any(array(select gone.id from gone)) or d.parent_id = any(array(select gone.id from gone))
      )
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
  /** The id the slice starts after: "0", then the `next` of the slice before. */
  after: string;
}

/** What one slice did. */
export interface PruneSlice {
  /** Jobs deleted: with the jobs of a batch, more than `limit` may go. */
  deleted: number;
  /** Where the next slice starts (its `after`); null when this one found fewer than `limit` jobs to take. */
  next: string | null;
}

const split = (text: unknown) => (text ? (text as string).split(",") : []);

/**
 * The locked jobs ("id:batch") of the batches all of whose jobs were locked (sizes,
 * "batch:n"); a batch with a job not locked (another transaction held it, or it changed)
 * is left whole.
 */
function wholeBatches(locked: string[], sizes: string[]): string[] {
  const jobs = new Map<string, string[]>();
  for (const pair of locked) {
    const [id, batch] = pair.split(":") as [string, string];
    const list = jobs.get(batch);
    if (list) list.push(id);
    else jobs.set(batch, [id]);
  }
  const out: string[] = [];
  for (const pair of sizes) {
    const [batch, n] = pair.split(":") as [string, string];
    const list = jobs.get(batch);
    if (list && list.length === Number(n)) out.push(...list);
  }
  return out;
}

export function pruneOps(c: DbContext, t: ReturnType<typeof pruneSql>) {
  return {
    /** Deletes a slice of the finished jobs past retention, in one transaction; null when another prune holds the lock. */
    jobPruneBatch(p: PruneBatchParams): Promise<PruneSlice | null> {
      return inTx(c, async (tx) => {
        const [lock] = await run(tx, t.lock, [`pgpulse:prune:${c.schema}`]);
        if (!lock!.locked) return null;
        const [slice] = await run(tx, t.slice, [p.completedMs, p.failedMs, p.limit, p.now, p.after]);
        const next = (slice!.taken as number) >= p.limit ? (slice!.last as string) : null;
        const ids = [...split(slice!.plain), ...wholeBatches(split(slice!.mates), split(slice!.sizes))];
        if (ids.length === 0) return { deleted: 0, next };
        const [row] = await run(tx, t.delete, [ids.join(",")]);
        const batches = row!.batches as string;
        if (batches !== "") await run(tx, t.batches, [batches]);
        return { deleted: row!.n as number, next };
      });
    },
  };
}
