import { notifyEnqueued } from "./channels.ts";

/**
 * retryJobs' statements (bulk.ts runs them): the change and the dry run's
 * count. As jobs.ts's retry does for one job, a job goes back to run unless a
 * parent keeps it (`parent`) or a live job holds its key (`key`).
 */

// Per-row checks, as lateral subqueries that stop at their first row: each an
// index probe (jobs_key_idx, job_deps_child_idx, job_deps' primary key), never
// a scan, and their own first condition skips most rows (no key, no parents,
// no children) before any probe.
/** A live job holds the key of row l. */
const held = (q: string) => `left join lateral (
          select true as held from ${q}.jobs o
           where l.key is not null and o.key = l.key and o.status in ('queued', 'running') limit 1) h on true`;
/**
 * A parent keeps row l from being retried (as jobs.ts's blockerOf): its failure
 * ended l (edge 'b'), or it stands failed or cancelled with an edge that fails or cancels l.
 */
const blocked = (q: string) => `left join lateral (
          select true as blocked from ${q}.job_deps e join ${q}.jobs p on p.id = e.parent_id
           where l.parents_left is not null and e.child_id = l.id
             and (e.state = 'b' or (e.state = 'w' and e.mode in ('fail', 'cancel') and p.status in ('failed', 'cancelled')))
           limit 1) b on true`;
/**
 * The change: retries the locked rows ($1, comma-separated ids); $2, the
 * schema's name, for the job_enqueued notification. Answers the counts.
 */
export function retryChangeSql(q: string): string {
  const LOCKED = `string_to_array($1::text, ',')::bigint[]`;
  return `
      with l as (select j.id, j.key, j.parents_left from ${q}.jobs j where j.id = any(${LOCKED})),
      judged as (
        select l.id, l.parents_left, case
          when b.blocked then 'parent'
          when l.key is not null and (h.held or row_number() over (partition by l.key order by l.id) > 1) then 'key'
          end as skip
        from l
        ${blocked(q)}
        ${held(q)}
      ),
      -- as jobs.ts's retry: edges from parents that no longer stand ended wait again
      -- (found through job_deps_child_idx, for the jobs of a flow only); a parent this
      -- statement retries counts as one that runs again (the statement's reads see it ended)
      rewait as (
        update ${q}.job_deps e set state = 'w'
          from ${q}.jobs p
         where e.child_id = any(array(select k.id from judged k where k.skip is null and k.parents_left is not null))
           and e.state = 'd' and p.id = e.parent_id
           and (p.status not in ('completed', 'failed', 'cancelled')
                or p.id = any(array(select k.id from judged k where k.skip is null)))
        returning e.child_id
      ),
      rewaited as (select r.child_id as id, count(*)::int as n from rewait r group by r.child_id),
      upd as (
        update ${q}.jobs j set
          parents_left = j.parents_left + coalesce(r.n, 0),
          status = case when coalesce(j.parents_left, 0) + coalesce(r.n, 0) > 0 then 'pending'::${q}.job_status
                        else 'queued'::${q}.job_status end,
          run_at = now(), worker_id = null, started_at = null,
          finished_at = null, cancel_requested_at = null, progress = 0,
          max_attempts = greatest(j.max_attempts, j.attempts + 1)
        from judged k left join rewaited r on r.id = k.id
        where j.id = k.id and k.skip is null
        returning j.id, j.queue, j.status
      ),
      note as (
        select ${notifyEnqueued("$2::text", "array_agg(distinct upd.queue)", "count(*)")}
        from upd where upd.status = 'queued' having count(*) > 0
      )
      select (select count(*) from upd)::int as changed,
        (select count(*) from judged where skip = 'key')::int as key,
        (select count(*) from judged where skip = 'parent')::int as parent,
        0 as children, 0 as batch, 0 as stopping, '' as batches, '' as held,
        (select count(*) from note)::int as notified`;
}

/** The dry run's reasons and joins for a retry, over the matching rows `l` (bulk.ts's countSql). */
export function retryCountParts(q: string): [string, string] {
  return [
    `count(*) filter (where b.blocked)::int as parent,
        -- of the jobs with a key: those whose key a live job holds, and all but one per key of the rest
        (count(l.key) - count(distinct l.key) filter (where h.held is null))::int as key,
        0 as children, 0 as batch, 0 as stopping`,
    `${blocked(q)}
        ${held(q)}`,
  ];
}
