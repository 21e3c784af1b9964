import { deleteChangeSql, deleteCountParts, deleteScanSql } from "./bulk-delete.ts";
import { retryChangeSql, retryCountParts } from "./bulk-retry.ts";
import { CONTROL_CHANNEL } from "./channels.ts";
import { type DbContext, inTx, run } from "./context.ts";
import { FILTER_PARAM_COUNT, filterSql, filterValues, type JobFilterParams } from "./job-filter.ts";

/**
 * Bulk operations: retry, cancel or delete the jobs a filter matches, one
 * batch of rows at a time, in id order:
 *
 * 1. scan: the next `limit` matching ids after the last batch's, within a
 *    span of ids, read without locking anything. The span bounds what one
 *    scan reads whatever plan Postgres picks (a filter that matches few rows
 *    of a large table would otherwise have it read the table for each batch):
 *    the whole run reads the table's ids once.
 * 2. batch, one short transaction: of those ids, the rows that still match
 *    and that no other transaction holds are locked by primary key (FOR
 *    UPDATE SKIP LOCKED, which also re-checks a row another transaction
 *    changed meanwhile); then a statement of its own changes them, so that
 *    what it reads of their parents, children and edges is what was committed
 *    by whoever held them before (as jobs.ts's retry does for one job). Ids
 *    that still match but were held come back as "busy", for the caller to
 *    come back to. The row locks last as long as this transaction.
 *
 * Each follows its single-job operation:
 * - retry (jobs.ts; its statements are in bulk-retry.ts): failed or
 *   cancelled jobs go back to queued (pending while a parent is left), with
 *   their errors kept; edges from parents that run again wait again. A job
 *   whose parent stands failed or cancelled with an edge that fails or
 *   cancels it is skipped (retry that parent), as is one whose key a live job
 *   holds (or an earlier job of the same batch took). One job_enqueued
 *   notification per batch names the queues that got runnable jobs.
 * - cancel (jobs.ts): pending and queued jobs are cancelled at once; running
 *   ones are asked to stop through pgpulse_control, one message per job.
 * - delete (prune.ts; its statements are in bulk-delete.ts): finished jobs go
 *   with their log lines and edges, and a batch with its last job; a job whose
 *   child has not completed is skipped, and a batch's jobs go together or not at all.
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
// for a lock the batch's ids, comma-separated ($11).
const AFTER = `$${FILTER_PARAM_COUNT + 1}`;
const UPTO = `$${FILTER_PARAM_COUNT + 2}`;
const LIMIT = `$${FILTER_PARAM_COUNT + 3}`;
const IDS = `$${FILTER_PARAM_COUNT + 1}`;
/** The ids a change statement takes ($1, comma-separated), as a bigint[]. */
const LOCKED = `string_to_array($1::text, ',')::bigint[]`;

const eligible = (q: string, action: BulkAction, j: string) =>
  `${j}.status in (${BULK_STATUSES[action].map((s) => `'${s}'`).join(", ")}) and ${filterSql(q, j, 1)}`;

// set_config() makes the scan a statement Postgres never plans in parallel:
// starting a parallel worker costs more (30 ms and up on a busy machine) than
// reading a span of ids in index order, and a plan unsure how many rows the
// filter keeps would start one for every batch.
function scanSql(q: string, action: BulkAction): string {
  if (action === "delete") return deleteScanSql(q, (j) => eligible(q, action, j), AFTER, UPTO, LIMIT);
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

/**
 * The lock: the ids that still match, those of them locked here, and for a delete
 * the batch of each matching job of one ("id:batch", comma-separated).
 */
function lockSql(q: string, action: BulkAction): string {
  const batches = action === "delete"
    ? `(select coalesce(string_agg(c.id::text || ':' || c.batch_id::text, ','), '') from cand c where c.batch_id is not null)`
    : `''`;
  return `
      with cand as (
        select j.id, j.batch_id from ${q}.jobs j
        where j.id = any(string_to_array(${IDS}::text, ',')::bigint[]) and ${eligible(q, action, "j")}
      ),
      locked as (
        select j.id from ${q}.jobs j
        where j.id = any(array(select cand.id from cand)) and ${eligible(q, action, "j")}
        order by j.id
        for update of j skip locked
      )
      select (select coalesce(string_agg(c.id::text, ','), '') from cand c) as matching,
        (select coalesce(string_agg(l.id::text, ','), '') from locked l) as locked, ${batches} as batches`;
}

/**
 * The statement that changes a batch's locked rows ($1), and its counts. $2: the schema's name, for
 * notifications (a delete's $2: the ids that matched but were held, bulk-delete.ts).
 */
function changeSql(q: string, action: BulkAction): string {
  switch (action) {
    case "retry":
      return retryChangeSql(q);
    case "cancel":
      return `
      with upd as (
        -- as jobs.ts's cancel: a running job is asked to stop, and ends as cancelled when its handler does
        update ${q}.jobs j set
          status = case when j.status <> 'running' then 'cancelled'::${q}.job_status else j.status end,
          finished_at = case when j.status <> 'running' then now() else j.finished_at end,
          cancel_requested_at = coalesce(j.cancel_requested_at, now())
        where j.id = any(${LOCKED})
        returning j.id, j.status, j.worker_id
      ),
      note as (
        select pg_notify('${CONTROL_CHANNEL}', json_build_object(
          'schema', $2::text, 'type', 'cancel', 'job', upd.id::text, 'worker', upd.worker_id)::text)
        from upd where upd.status = 'running'
      )
      select (select count(*) from upd)::int as changed, 0 as key, 0 as parent, 0 as children, 0 as batch,
        (select count(*) from upd where upd.status = 'running')::int as stopping, '' as batches, '' as held,
        (select count(*) from note)::int as notified`;
    case "delete":
      return deleteChangeSql(q);
  }
}

/** A dry run: the jobs an action would find, and those it would skip and why. Locks nothing. */
function countSql(q: string, action: BulkAction): string {
  const [reasons, joins] = {
    retry: retryCountParts(q),
    cancel: [`0 as parent, 0 as key, 0 as children, 0 as batch, count(*) filter (where l.status = 'running')::int as stopping`, ""],
    delete: deleteCountParts(q, (j) => eligible(q, "delete", j)),
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
    lock: by((a) => lockSql(q, a)),
    change: by((a) => changeSql(q, a)),
    count: by((a) => countSql(q, a)),
    // Batches whose last job a delete took go with it (prune.ts does the same).
    batches: `
      delete from ${q}.batches b
       where b.id = any(string_to_array($1::text, ',')::bigint[]) and not exists (select 1 from ${q}.jobs j where j.batch_id = b.id)`,
  };
}

/** One batch's outcome. */
export interface BulkBatch {
  /** The batch's ids that still matched. */
  seen: number;
  /**
   * Ids that still matched but another transaction held, in groups to come back to
   * together: a delete's, the jobs of one batch; else one id each.
   */
  busy: string[][];
  changed: number;
  /**
   * Skipped: retry, a live job holds the key; parent, a parent keeps the job from a retry; delete,
   * children, a child has not completed; batch, a job of its batch is not deleted with it.
   */
  key: number;
  parent: number;
  children: number;
  batch: number;
  /** cancel: running jobs asked to stop (counted in changed). */
  stopping: number;
}

/** A dry run's counts. */
export interface BulkCount {
  matched: number;
  key: number;
  parent: number;
  children: number;
  batch: number;
  stopping: number;
}

const split = (text: unknown) => (text ? (text as string).split(",") : []);

/** Ids in groups by batch (`batchOf`; one each without), each in id order, the groups by their first id. */
function together(ids: string[], batchOf: Map<string, string>): string[][] {
  const byId = (a: string, b: string) => (BigInt(a) < BigInt(b) ? -1 : 1);
  const groups = new Map<string, string[]>();
  for (const id of [...ids].sort(byId)) {
    const key = batchOf.has(id) ? `b${batchOf.get(id)}` : `j${id}`;
    const group = groups.get(key);
    if (group) group.push(id);
    else groups.set(key, [id]);
  }
  return [...groups.values()];
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
      return split(row!.ids);
    },
    /**
     * Runs an action on those of `ids` that still match the filter and that no other
     * transaction holds, in one transaction: lock, then change. Throws 23505 when a
     * retry meets a key taken meanwhile (the transaction rolls back).
     */
    jobBulkBatch(action: BulkAction, filter: JobFilterParams, ids: string[]): Promise<BulkBatch> {
      return inTx(c, async (tx) => {
        const [lock] = await run(tx, t.lock[action], [...filterValues(filter), ids.join(",")]);
        const matching = split(lock!.matching);
        const locked = split(lock!.locked);
        const batchOf = new Map(split(lock!.batches).map((pair) => pair.split(":") as [string, string]));
        // (the difference is taken here: a plan for it in SQL, unsure of the sizes, could compare every pair)
        const mine = new Set(locked);
        const busy = matching.filter((id) => !mine.has(id));
        const out: BulkBatch = { seen: matching.length, busy: together(busy, batchOf), changed: 0, key: 0, parent: 0, children: 0, batch: 0, stopping: 0 };
        if (locked.length === 0) return out;
        const [row] = await run(tx, t.change[action], [locked.join(","), action === "delete" ? busy.join(",") : c.schema]);
        const r = row!;
        if (r.batches) await run(tx, t.batches, [r.batches as string]);
        // a delete gives back, as busy, the jobs of a batch whose other job another transaction held
        const held = split(r.held);
        return {
          ...out, busy: held.length > 0 ? together([...busy, ...held], batchOf) : out.busy,
          changed: r.changed as number, key: r.key as number, parent: r.parent as number, children: r.children as number,
          batch: r.batch as number, stopping: r.stopping as number,
        };
      });
    },
    /** Counts what an action would do, changing and locking nothing. */
    async jobBulkCount(action: BulkAction, filter: JobFilterParams): Promise<BulkCount> {
      const [row] = await run(c, t.count[action], filterValues(filter));
      const r = row!;
      return {
        matched: r.matched as number, key: r.key as number, parent: r.parent as number, children: r.children as number,
        batch: r.batch as number, stopping: r.stopping as number,
      };
    },
  };
}
