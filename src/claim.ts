import type { SqlHandle } from "./connection.ts";
import type { ClaimedJob } from "./context.ts";

/**
 * Claims up to `limit` runnable jobs for a worker in one statement.
 *
 * Why it is shaped this way: the lateral subquery walks the worker's queues in
 * the order given, and within each the partial index jobs_claim_idx in claim
 * order (priority desc, run_at, id), so no sort over the whole backlog is ever
 * needed and claim time does not grow with queue depth. Execution is lazy: a
 * later queue is read only when the earlier ones could not fill the batch, and
 * rows are locked only as they are taken. SKIP LOCKED lets any number of
 * workers claim at once without waiting on each other. Only tasks the worker
 * knows are taken: a job for a task nobody here handles stays queued for a
 * worker that does.
 *
 * Lists travel as JSON text, not as Postgres arrays: postgres.js can only encode
 * array parameters once it has fetched the connection's types, which on some
 * runtimes (Deno) races the first query.
 */
export function claimSql(q: string): string {
  return `
    with t as (select coalesce($5::timestamptz, now()) as now),
    -- The worker must hold its lease: the key-share lock makes the reaper's
    -- delete of this row wait for the claim, and a reaped worker claims nothing.
    lease as (select w.id from ${q}.workers w where w.id = $4 for key share),
    picked as (
      select c.id
      from jsonb_array_elements_text($1::text::jsonb) with ordinality as qn(name, ord)
      cross join lateral (
        select j.id from ${q}.jobs j, t
        where j.status = 'queued' and j.queue = qn.name and j.run_at <= t.now
          and j.task = any(array(select jsonb_array_elements_text($2::text::jsonb)))
        order by j.priority desc, j.run_at, j.id
        limit $3
        for update of j skip locked
      ) c
      where exists (select 1 from lease)
      limit $3
    )
    update ${q}.jobs j set
      status = 'running', attempts = j.attempts + 1, worker_id = $4,
      started_at = t.now, progress = 0
    from picked, t
    where j.id = picked.id
    returning j.id, j.task, j.queue, j.payload, j.priority, j.attempts, j.max_attempts,
      j.timeout_ms, j.key, j.created_at, j.run_at`;
}

export async function claimJobs(
  sql: SqlHandle,
  text: string,
  args: { queues: readonly string[]; tasks: readonly string[]; limit: number; workerId: string; now: Date | null },
): Promise<ClaimedJob[]> {
  const rows = await sql.unsafe(
    text,
    [JSON.stringify(args.queues), JSON.stringify(args.tasks), args.limit, args.workerId, args.now],
    { prepare: true },
  );
  const jobs = rows.map((r) => ({
    id: String(r.id),
    task: r.task as string,
    queue: r.queue as string,
    payload: r.payload,
    priority: r.priority as number,
    attempt: r.attempts as number,
    maxAttempts: r.max_attempts as number,
    timeoutMs: r.timeout_ms as number | null,
    key: r.key as string | null,
    createdAt: r.created_at as Date,
    runAt: r.run_at as Date,
  }));
  // UPDATE ... RETURNING gives no order; hand them out in claim order.
  const rank = new Map(args.queues.map((name, i) => [name, i]));
  return jobs.sort(
    (a, b) =>
      rank.get(a.queue)! - rank.get(b.queue)! ||
      b.priority - a.priority ||
      a.runAt.getTime() - b.runAt.getTime() ||
      (BigInt(a.id) < BigInt(b.id) ? -1 : 1),
  );
}
