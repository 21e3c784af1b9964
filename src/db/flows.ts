import type { JobRow } from "../shared/types.ts";
import { type DbContext, run, runJson, runRows, whilePresent } from "./context.ts";

/** Workflows and batches (sql/000006): graphs of jobs, their edges and batches' counts. */
export function flowsSql(q: string) {
  return {
    // Only what the database decides comes back: the ids (in input order), its clock and the batch,
    // as one JSON text. On the pool, enqueue_flow_later() (sql/000011) runs enqueue_flow(), commits,
    // then notifies; in a caller's transaction (or on a schema before version 11) the statement
    // below, read with runJson, whose notification goes with the transaction.
    enqueueLater: `call ${q}.enqueue_flow_later($1::text::jsonb, $2::text::jsonb, null)`,
    enqueue: `
      select json_build_array(string_agg((e.job).id::text, ',' order by e.ord), min((e.job).created_at), min(e.batch_id)::text)::text
        from ${q}.enqueue_flow($1::text::jsonb, $2::text::jsonb) e`,
    // A child's parents, by id (ids are drawn parents before children, not in the specs' order).
    // (read by position, the result as JSON text: runJobs of pgpulse/testing asks in the caller's transaction)
    parents: `
      select p.id::text as id, p.task, p.status::text, p.result::text
        from ${q}.job_deps d join ${q}.jobs p on p.id = d.parent_id
       where d.child_id = $1::bigint
       order by p.id
       limit $2`,
    // The jobs connected to one, through edges either way, up to a limit, and the edges among them.
    graph: `
      with recursive g(id) as (
        select $1::bigint
        union
        select x.id from g, lateral (
          select d.parent_id as id from ${q}.job_deps d where d.child_id = g.id
          union all
          select d.child_id from ${q}.job_deps d where d.parent_id = g.id
        ) x
      ), nodes as (select id from g limit $2)
      select json_build_object('nodes',
        (select coalesce(json_agg(json_build_object('id', j.id::text, 'task', j.task, 'queue', j.queue,
            'status', j.status, 'progress', j.progress, 'startedAt', j.started_at, 'finishedAt', j.finished_at)
            order by j.id), '[]') from ${q}.jobs j where j.id in (select id from nodes)),
        'edges', (select coalesce(json_agg(json_build_array(d.parent_id::text, d.child_id::text, d.mode, d.state)
            order by d.parent_id, d.child_id), '[]')
           from ${q}.job_deps d
          where d.parent_id in (select id from nodes) and d.child_id in (select id from nodes)),
        -- counting stops past the limit: the walk does not go through a large graph to say it is large
        'truncated', (select count(*) from (select 1 from g limit $2 + 1) x) > $2)::text`,
    // A job's direct parents and children, up to a limit each, how many there are, and
    // the first parent whose failure ended the job (which blocks retrying it).
    neighbours: `
      select
        (select count(*)::int from ${q}.job_deps d where d.child_id = $1::bigint) as parents,
        (select count(*)::int from ${q}.job_deps d where d.parent_id = $1::bigint) as children,
        (select min(d.parent_id)::text from ${q}.job_deps d where d.child_id = $1::bigint and d.state = 'b') as blocked_by,
        (select coalesce(json_agg(json_build_array(x.side, x.id::text, x.task, x.status, x.mode, x.state)
            order by x.side desc, x.id), '[]') from (
          (select 'parent' as side, j.id, j.task, j.status, d.mode, d.state
             from ${q}.job_deps d join ${q}.jobs j on j.id = d.parent_id
            where d.child_id = $1::bigint order by d.parent_id limit $2)
          union all
          (select 'child', j.id, j.task, j.status, d.mode, d.state
             from ${q}.job_deps d join ${q}.jobs j on j.id = d.child_id
            where d.parent_id = $1::bigint order by d.child_id limit $2)
        ) x) as edges`,
    batch: `
      select json_build_object('id', b.id::text, 'size', b.size, 'callbacks', b.callbacks, 'created_at', b.created_at,
        'counts', (select json_object_agg(c.status, c.n) from (
          select j.status, count(*)::int as n from ${q}.jobs j where j.batch_id = b.id group by j.status) c))::text
      from ${q}.batches b where b.id = $1::bigint`,
  };
}

export interface ParentRow {
  id: string;
  task: string;
  status: JobRow["status"];
  result: unknown;
}

export interface GraphRow {
  nodes: { id: string; task: string; queue: string; status: JobRow["status"]; progress: number; startedAt: string | null; finishedAt: string | null }[];
  edges: [string, string, string, string][];
  truncated: boolean;
}

export interface NeighboursRow {
  parents: number;
  children: number;
  blocked_by: string | null;
  /** [side, id, task, status, mode, state]: parents first, then children, each by id. */
  edges: ["parent" | "child", string, string, JobRow["status"], string, string][];
}

export interface BatchRow {
  id: string;
  size: number;
  callbacks: Record<string, string>;
  created_at: Date;
  counts: Record<string, number> | null;
}

export function flowsOps(c: DbContext, t: ReturnType<typeof flowsSql>) {
  // A schema before version 11 has no enqueue_flow_later().
  const later = whilePresent(c, "enqueue_flow_later");
  return {
    /** Inserts a graph of jobs (specs as enqueue_flow takes them); returns their ids in input order, the database's clock and the batch's id. */
    async flowEnqueue(specs: string, batch: string | null): Promise<{ ids: string[]; now: Date; batchId: string | null }> {
      type Answer = [string, string, string | null];
      const [ids, now, batchId] = await later(
        async () => JSON.parse((await run(c, t.enqueueLater, [specs, batch]))[0]!.answer as string) as Answer,
        async () => (await runJson<Answer>(c, t.enqueue, [specs, batch]))[0]!,
      );
      return { ids: ids.split(","), now: new Date(now), batchId };
    },
    /** A child's parents (id, task, status, result), in the order they were enqueued: what ctx.parents() gives. */
    async flowParents(childId: string, limit: number): Promise<ParentRow[]> {
      return (await runRows(c, t.parents, [childId, limit])).map(([id, task, status, result]) => ({
        id: id as string, task: task as string, status: status as ParentRow["status"], result: result === null ? null : JSON.parse(result as string),
      }));
    },
    async flowGraph(id: string, limit: number): Promise<GraphRow> {
      const [graph] = await runJson<GraphRow>(c, t.graph, [id, limit]);
      return graph!;
    },
    /** A job's direct parents and children (up to `limit` of each) and their counts. */
    async flowNeighbours(id: string, limit: number): Promise<NeighboursRow> {
      const [row] = await run(c, t.neighbours, [id, limit]);
      return row as unknown as NeighboursRow;
    },
    async batchGet(id: string): Promise<BatchRow | null> {
      const [row] = await runJson<Omit<BatchRow, "created_at"> & { created_at: string }>(c, t.batch, [id]);
      return row ? { ...row, created_at: new Date(row.created_at) } : null;
    },
  };
}
