/**
 * deleteJobs' statements (bulk.ts runs them): the scan, the change and the
 * dry run's count. As the pruner does (prune.ts), a delete keeps what others
 * read: a job with a child that has not completed (the child reads its result
 * when it runs, and may be retried), and a batch's jobs, deleted together or
 * not at all: a batch's state is read from the jobs it has left, so one whose
 * failed job went alone would read as completed.
 *
 * A job of a batch is deleted only with every other job of its batch, in one
 * transaction: when the filter matches each of them (all finished), and none
 * has a child that has not completed. Else the batch's matched jobs are
 * skipped and counted (`batch`; `children` for one with such a child). When
 * only another transaction's lock on one of them keeps the batch from going,
 * its jobs here are given back as busy, to be come back to together.
 *
 * Parameters: $1..$10 the filter (job-filter.ts), as bulk.ts passes them.
 */

/** A child of row `j` has not completed (as prune.ts keeps a parent): `as`.waiting, or null. */
export const waiting = (q: string, j = "l", as = "w") => `left join lateral (
          select true as waiting from ${q}.job_deps d join ${q}.jobs c on c.id = d.child_id
           where ${j}.has_children and d.parent_id = ${j}.id and c.status <> 'completed' limit 1) ${as} on true`;

/**
 * The scan: the first `limit` matching ids after `after` and up to `upTo`, then
 * on to the last job of every batch one of them belongs to (and of the batches
 * the jobs taken so bring in), with every matching job up to there, so that a
 * batch's jobs all come in one batch of the run, whatever its size. Without
 * batches the reach costs one probe of an empty range.
 */
export function deleteScanSql(q: string, eligible: (j: string) => string, after: string, upTo: string, limit: string): string {
  const batchEnd = (batches: string) => `(select max(b.id) from ${q}.jobs b where b.batch_id = any(array(${batches})))`;
  return `
      with recursive first as (
        select j.id, j.batch_id from ${q}.jobs j
        where j.id > ${after}::text::bigint and j.id <= ${upTo}::text::bigint and ${eligible("j")}
        order by j.id
        limit ${limit}::int
      ),
      -- (lo, hi]: ids taken by the step before, whose batches may reach further
      reach(lo, hi) as (
        select f.last, greatest(f.last, ${batchEnd(`select x.batch_id from first x where x.batch_id is not null`)})
          from (select max(x.id) as last from first x) f where f.last is not null
        union all
        select r.hi, m.hi from reach r, lateral (
          select ${batchEnd(`select j.batch_id from ${q}.jobs j
            where j.id > r.lo and j.id <= r.hi and j.batch_id is not null and ${eligible("j")}`)} as hi) m
        where m.hi > r.hi
      ),
      taken as (
        select x.id from first x
        union all
        select j.id from ${q}.jobs j
        where j.id > (select max(x.id) from first x) and j.id <= (select max(r.hi) from reach r) and ${eligible("j")}
      )
      select coalesce(string_agg(t.id::text, ',' order by t.id), '') as ids,
        set_config('max_parallel_workers_per_gather', '0', true) as serial
      from taken t`;
}

/**
 * The change: deletes the locked rows ($1, comma-separated ids) that nothing
 * keeps, with their log lines and their edges both ways. $2: the ids that
 * matched but another transaction held (busy). Answers the counts, the
 * batches it took jobs of, and in `held` the rows given back as busy.
 */
export function deleteChangeSql(q: string): string {
  const ids = (n: number) => `string_to_array($${n}::text, ',')::bigint[]`;
  return `
      with l as (select j.id, j.has_children, j.batch_id from ${q}.jobs j where j.id = any(${ids(1)})),
      lw as (select l.id, l.batch_id, coalesce(w.waiting, false) as waiting from l ${waiting(q)}),
      -- each batch of a locked row, over all its jobs: one not locked here (apart: not
      -- finished, not matched; held: another transaction's), one with a waiting child
      bj as (
        select b.batch_id,
          bool_or(t.id is null and not (b.id = any(${ids(2)}))) as apart,
          bool_or(t.id is null and b.id = any(${ids(2)})) as held,
          bool_or(coalesce(t.waiting, false)) as waiting
        from ${q}.jobs b left join lw t on t.id = b.id
        where b.batch_id = any(array(select distinct x.batch_id from lw x where x.batch_id is not null))
        group by b.batch_id
      ),
      judged as (
        select lw.id, case
          when lw.waiting then 'children'
          when k.apart or k.waiting then 'batch'
          when k.held then 'held'
          end as skip
        from lw left join bj k on k.batch_id = lw.batch_id
      ),
      gone as (delete from ${q}.jobs j using judged k where j.id = k.id and k.skip is null returning j.id, j.batch_id),
      logs as (delete from ${q}.job_logs g using gone where g.job_id = gone.id),
      -- (by the arrays: two index scans, job_deps_child_idx and its primary key, whatever the plan's estimates)
      edges as (
        delete from ${q}.job_deps d
         where d.child_id = any(array(select gone.id from gone)) or d.parent_id = any(array(select gone.id from gone))
      )
      select (select count(*) from gone)::int as changed, 0 as key, 0 as parent,
        (select count(*) from judged where skip = 'children')::int as children,
        (select count(*) from judged where skip = 'batch')::int as batch, 0 as stopping,
        (select coalesce(string_agg(distinct gone.batch_id::text, ','), '') from gone) as batches,
        (select coalesce(string_agg(k.id::text, ','), '') from judged k where k.skip = 'held') as held,
        0 as notified`;
}

/** The dry run's reasons and joins for a delete, over the matching rows `l` (bulk.ts's countSql). */
export function deleteCountParts(q: string, eligible: (j: string) => string): [string, string] {
  return [
    `0 as parent, 0 as key, count(*) filter (where w.waiting)::int as children,
        count(*) filter (where w.waiting is null and x.batch_id is not null)::int as batch, 0 as stopping`,
    `${waiting(q)}
        -- batches with a job the delete would not take: not matched, not finished, or with a waiting child
        left join (
          select d.batch_id from (select distinct m.batch_id from ${q}.jobs m where m.batch_id is not null and ${eligible("m")}) d
           where exists (select 1 from ${q}.jobs b ${waiting(q, "b", "bw")}
                          where b.batch_id = d.batch_id and ((${eligible("b")}) is not true or bw.waiting))
        ) x on x.batch_id = l.batch_id`,
  ];
}
