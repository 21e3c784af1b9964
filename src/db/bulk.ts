import { CONTROL_CHANNEL, notifyEnqueued } from "./channels.ts";
import { type DbContext, run } from "./context.ts";
import { FILTER_PARAM_COUNT, filterSql, filterValues, type JobFilterParams } from "./job-filter.ts";

/**
 * Bulk operations: retry, cancel or delete the jobs a filter matches, one
 * batch of rows at a time, in id order, in two statements per batch:
 *
 * 1. scan: the next `limit` matching ids after the last batch's, within a
 *    span of ids, read without locking anything. The span bounds what one
 *    scan reads whatever plan Postgres picks (a filter that matches few rows
 *    of a large table would otherwise have it read the table for each batch):
 *    the whole run reads the table's ids once.
 * 2. batch: for those ids only (by primary key), the rows that still match
 *    and that no other transaction holds are locked (FOR UPDATE SKIP LOCKED,
 *    which also re-checks a row another transaction changed meanwhile) and
 *    changed, in one statement: one transaction, whose row locks last as
 *    long as it does. Ids that still match but were held come back as
 *    "busy", for the caller to come back to with the same statement.
 *
 * Each follows its single-job operation in jobs.ts:
 * - retry: failed or cancelled jobs go back to queued (pending when parents
 *   are still to end), with their errors kept. A job a parent's failure ended
 *   (an edge in state 'b') is skipped, as is one whose key a live job holds
 *   (or an earlier job of the same batch took): one job_enqueued
 *   notification per batch names the queues that got runnable jobs.
 * - cancel: pending and queued jobs are cancelled at once; running ones are
 *   asked to stop through pgpulse_control, one message per job, as cancel().
 * - delete: finished jobs (completed, failed, cancelled) go, with their log
 *   lines and the edges to their parents, as the pruner deletes them; a job
 *   with a child that still waits or runs is skipped (the child reads it).
 */
export type BulkAction = "retry" | "cancel" | "delete";

/** The statuses each action applies to. */
export const BULK_STATUSES = {
  retry: ["failed", "cancelled"],
  cancel: ["pending", "queued", "running"],
  delete: ["completed", "failed", "cancelled"],
} as const satisfies Record<BulkAction, readonly string[]>;

// Parameters: $1..$10 the filter (job-filter.ts), then for a scan the id to
// start after ($11), the last id of its span ($12) and the batch size ($13);
// for a batch its ids, comma-separated ($11), and the schema's name ($12, for
// notifications: retry and cancel).
const AFTER = `$${FILTER_PARAM_COUNT + 1}`;
const UPTO = `$${FILTER_PARAM_COUNT + 2}`;
const LIMIT = `$${FILTER_PARAM_COUNT + 3}`;
const IDS = `$${FILTER_PARAM_COUNT + 1}`;
const SCHEMA = `$${FILTER_PARAM_COUNT + 2}`;

const eligible = (q: string, action: BulkAction, j: string) =>
  `${j}.status in (${BULK_STATUSES[action].map((s) => `'${s}'`).join(", ")}) and ${filterSql(q, j, 1)}`;

// set_config() makes the scan a statement Postgres never plans in parallel:
// starting a parallel worker costs more (30 ms and up on a busy machine) than
// reading a span of ids in index order, and a plan unsure how many rows the
// filter keeps would start one for every batch.
function scanSql(q: string, action: BulkAction): string {
  return `
      select coalesce(string_agg(c.id::text, ',' order by c.id), '') as ids,
        set_config('max_parallel_workers_per_gather', '0', true) as serial
      from (
        select j.id from ${q}.jobs j
        where j.id > ${AFTER}::text::bigint and j.id <= ${UPTO}::text::bigint and ${eligible(q, action, "j")}
        order by j.id
        limit ${LIMIT}::int
      ) c`;
}

// Per-row checks, as lateral subqueries that stop at their first row: each is
// an index probe (jobs_key_idx, job_deps_child_idx, job_deps' primary key),
// never a scan, and the probe's own condition skips most rows (no key, no
// parents, no children) before it.
/** A live job holds the key of row l. */
const held = (q: string) => `left join lateral (
          select true as held from ${q}.jobs o
           where l.key is not null and o.key = l.key and o.status in ('queued', 'running') limit 1) h on true`;
/** A parent's failure ended row l (an edge in state 'b'). */
const blocked = (q: string) => `left join lateral (
          select true as blocked from ${q}.job_deps e
           where l.parents_left is not null and e.child_id = l.id and e.state = 'b' limit 1) b on true`;
/** A child of row l still waits or runs. */
const waiting = (q: string) => `left join lateral (
          select true as waiting from ${q}.job_deps d join ${q}.jobs c on c.id = d.child_id
           where l.has_children and d.parent_id = l.id and c.status in ('pending', 'queued', 'running') limit 1) w on true`;

/** What each action does to the rows it locked (`locked`), as CTEs after it; and its counts. */
function actionSql(q: string, action: BulkAction): { ctes: string; counts: string } {
  switch (action) {
    case "retry":
      return {
        ctes: `
      judged as (
        select l.id, case
          when b.blocked then 'parent'
          when l.key is not null and (h.held or row_number() over (partition by l.key order by l.id) > 1) then 'key'
          end as skip
        from locked l
        ${blocked(q)}
        ${held(q)}
      ),
      upd as (
        -- as jobs.ts's retry: a job with parents still to end waits for them again
        update ${q}.jobs j set
          status = case when coalesce(j.parents_left, 0) > 0 then 'pending'::${q}.job_status
                        else 'queued'::${q}.job_status end,
          run_at = now(), worker_id = null, started_at = null,
          finished_at = null, cancel_requested_at = null, progress = 0,
          max_attempts = greatest(j.max_attempts, j.attempts + 1)
        from judged k
        where j.id = k.id and k.skip is null
        returning j.id, j.queue, j.status
      ),
      note as (
        select ${notifyEnqueued(`${SCHEMA}::text`, "array_agg(distinct upd.queue)", "count(*)")}
        from upd where upd.status = 'queued' having count(*) > 0
      )`,
        counts: `
        (select count(*) from upd)::int as changed,
        (select count(*) from judged where skip = 'key')::int as key,
        (select count(*) from judged where skip = 'parent')::int as parent,
        0 as children, 0 as stopping,
        (select count(*) from note)::int as notified`,
      };
    case "cancel":
      return {
        ctes: `
      upd as (
        -- as jobs.ts's cancel: a running job is asked to stop, and ends as cancelled when its handler does
        update ${q}.jobs j set
          status = case when j.status <> 'running' then 'cancelled'::${q}.job_status else j.status end,
          finished_at = case when j.status <> 'running' then now() else j.finished_at end,
          cancel_requested_at = coalesce(j.cancel_requested_at, now())
        from locked k
        where j.id = k.id
        returning j.id, j.status, j.worker_id
      ),
      note as (
        select pg_notify('${CONTROL_CHANNEL}', json_build_object(
          'schema', ${SCHEMA}::text, 'type', 'cancel', 'job', upd.id::text, 'worker', upd.worker_id)::text)
        from upd where upd.status = 'running'
      )`,
        counts: `
        (select count(*) from upd)::int as changed,
        0 as key, 0 as parent, 0 as children,
        (select count(*) from upd where upd.status = 'running')::int as stopping,
        (select count(*) from note)::int as notified`,
      };
    case "delete":
      return {
        ctes: `
      judged as (
        select l.id, case when w.waiting then 'children' end as skip
        from locked l
        ${waiting(q)}
      ),
      gone as (delete from ${q}.jobs j using judged k where j.id = k.id and k.skip is null returning j.id),
      logs as (delete from ${q}.job_logs g using gone where g.job_id = gone.id),
      edges as (delete from ${q}.job_deps d using gone where d.child_id = gone.id)`,
        counts: `
        (select count(*) from gone)::int as changed,
        0 as key, 0 as parent,
        (select count(*) from judged where skip = 'children')::int as children,
        0 as stopping, 0 as notified`,
      };
  }
}

function batchSql(q: string, action: BulkAction): string {
  const { ctes, counts } = actionSql(q, action);
  return `
      with cand as (
        select j.id from ${q}.jobs j
        where j.id = any(string_to_array(${IDS}::text, ',')::bigint[]) and ${eligible(q, action, "j")}
      ),
      locked as (
        select j.id, j.key, j.parents_left, j.has_children from ${q}.jobs j
        where j.id = any(array(select cand.id from cand)) and ${eligible(q, action, "j")}
        order by j.id
        for update of j skip locked
      ),${ctes}
      select
        (select count(*) from cand)::int as seen,
        (select string_agg(c.id::text, ',' order by c.id) from cand c where not exists (select 1 from locked l where l.id = c.id)) as busy,
        ${counts}`;
}

/** A dry run: the jobs an action would find, and those it would skip and why. Locks nothing. */
function countSql(q: string, action: BulkAction): string {
  const [reasons, joins] = {
    retry: [
      `count(*) filter (where b.blocked)::int as parent,
        -- of the jobs with a key: those whose key a live job holds, and all but one per key of the rest
        (count(l.key) - count(distinct l.key) filter (where h.held is null))::int as key,
        0 as children, 0 as stopping`,
      `${blocked(q)}
        ${held(q)}`,
    ],
    cancel: [`0 as parent, 0 as key, 0 as children, count(*) filter (where l.status = 'running')::int as stopping`, ""],
    delete: [`0 as parent, 0 as key, count(*) filter (where w.waiting)::int as children, 0 as stopping`, waiting(q)],
  }[action];
  return `
      select count(*)::int as matched, ${reasons}
      from ${q}.jobs l
        ${joins}
      where ${eligible(q, action, "l")}`;
}

export function bulkSql(q: string) {
  const actions = ["retry", "cancel", "delete"] as const;
  const by = <T>(f: (a: BulkAction) => T) => Object.fromEntries(actions.map((a) => [a, f(a)])) as Record<BulkAction, T>;
  return {
    lastId: `select max(id)::text as id from ${q}.jobs`,
    scan: by((a) => scanSql(q, a)),
    batch: by((a) => batchSql(q, a)),
    count: by((a) => countSql(q, a)),
  };
}

/** One batch's outcome. */
export interface BulkBatch {
  /** The batch's ids that still matched. */
  seen: number;
  /** Ids that still matched but another transaction held. */
  busy: string[];
  changed: number;
  /** Skipped: retry, a live job holds the key; parent, a parent's failure ended the job; children, a child still waits for it. */
  key: number;
  parent: number;
  children: number;
  /** cancel: running jobs asked to stop (counted in changed). */
  stopping: number;
}

/** A dry run's counts. */
export interface BulkCount {
  matched: number;
  key: number;
  parent: number;
  children: number;
  stopping: number;
}

export function bulkOps(c: DbContext, t: ReturnType<typeof bulkSql>) {
  return {
    /** The largest job id there is (null without jobs): where a bulk run stops. */
    async jobLastId(): Promise<string | null> {
      const [row] = await run(c, t.lastId);
      return (row?.id as string | null) ?? null;
    },
    /** The first `limit` ids after `after` and up to `upTo` (in id order) that an action would take; locks nothing. */
    async jobBulkScan(action: BulkAction, filter: JobFilterParams, after: string, upTo: string, limit: number): Promise<string[]> {
      const [row] = await run(c, t.scan[action], [...filterValues(filter), after, upTo, limit]);
      return row!.ids ? (row!.ids as string).split(",") : [];
    },
    /** Runs an action on those of `ids` that still match the filter and no other transaction holds: one statement. */
    async jobBulkBatch(action: BulkAction, filter: JobFilterParams, ids: string[]): Promise<BulkBatch> {
      // (delete sends no notification, so its statement takes no schema name)
      const params = [...filterValues(filter), ids.join(","), ...(action === "delete" ? [] : [c.schema])];
      const [row] = await run(c, t.batch[action], params);
      const r = row!;
      return {
        seen: r.seen as number,
        busy: r.busy ? (r.busy as string).split(",") : [],
        changed: r.changed as number,
        key: r.key as number,
        parent: r.parent as number,
        children: r.children as number,
        stopping: r.stopping as number,
      };
    },
    /** Counts what an action would do, changing and locking nothing. */
    async jobBulkCount(action: BulkAction, filter: JobFilterParams): Promise<BulkCount> {
      const [row] = await run(c, t.count[action], filterValues(filter));
      const r = row!;
      return { matched: r.matched as number, key: r.key as number, parent: r.parent as number, children: r.children as number, stopping: r.stopping as number };
    },
  };
}
