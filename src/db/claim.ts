import type { ClaimedJob } from "../shared/types.ts";
import { type DbContext, runRows } from "./context.ts";

/**
 * The claim found its worker's row gone when it came to lock it (the reaper
 * declared the worker dead meanwhile): it was undone, its jobs stay queued.
 */
export function isLeaseLostInClaim(error: unknown): boolean {
  const e = error as { code?: unknown; message?: unknown } | null;
  return e?.code === "55000" && typeof e.message === "string" && e.message.includes("lost its lease while claiming");
}

export interface Claimed {
  /** In claim order: earlier queues first, then priority, then age. */
  jobs: ClaimedJob[];
  /** When a rate limit held jobs back: ms until the next start is allowed. */
  wakeMs: number | null;
  /**
   * Jobs claimed ahead of the free slots, which the database has no start time for yet:
   * for each, what to add to performance.now() to get the database's clock (ms since the
   * epoch), as of the claim. A start dated with it is never later than the real one.
   */
  unstarted: Map<string, number>;
}

export interface ClaimParams {
  queues: readonly string[];
  tasks: readonly string[];
  /** Most jobs to claim. */
  limit: number;
  /** How many of them are claimed ahead of the free slots (their start is left unwritten). */
  ahead?: number;
  workerId: string;
  /** The database clock's stand-in, for tests; null for now(). */
  now: Date | null;
}

/**
 * Claims runnable jobs through the schema's claim_rows() function
 * (sql/000008, around claim() of sql/000003): one round trip, whatever mix of
 * limited and unlimited queues the worker serves, a row per job with its times
 * in microseconds since the epoch. Lists travel as JSON text, not as Postgres
 * arrays: postgres.js can only encode array parameters once it has fetched the
 * connection's types, which on some runtimes (Deno) races the first query.
 */
export function claimSql(q: string, asText = false): string {
  // The numbers of a row in one text, "id,priority,attempt,max_attempts,timeout_ms,
  // created_us,run_us,waiting_since_us,wake_ms" (a null as nothing), read as one
  // column and split: about a microsecond of the worker's CPU less per job claimed
  // than nine columns, for the same Postgres CPU (bench: claim-cpu). Rows are read
  // by position (runRows). In a caller's transaction (runJobs of pgpulse/testing)
  // the payload and meta come as JSON text (asText), which the caller's
  // postgres.js transform cannot change; on pgpulse's own pool the driver parses
  // them, a little cheaper (claim-cpu: about 0.3 us of the worker's CPU per job).
  const json = asText ? "payload::text, meta::text" : "payload, meta";
  return `select concat(id, ',', priority, ',', attempt, ',', max_attempts, ',', timeout_ms, ',', created_us, ',', run_us, ',',
      waiting_since_us, ',', wake_ms), task, queue, key, ${json}
    from ${q}.claim_rows($1::text::jsonb, $2::text::jsonb, $3::integer, $4::text, $5::timestamptz, $6::integer)`;
}

export function claimOps(c: DbContext, t: { pool: string; tx: string }) {
  // (a context bound to a caller's transaction has no pool)
  const asText = c.pool === null;
  const statement = asText ? t.tx : t.pool;
  return {
    /**
     * Claims runnable jobs for a worker, in claim order. A signal that aborts cancels the
     * statement: the claim is undone and rejects (57014), unless it committed first.
     */
    jobClaim: (args: ClaimParams, signal?: AbortSignal) => claimJobs(c, statement, asText, args, signal),
  };
}

/**
 * A row of claimSql(), as values in column order: the numbers (see claimSql),
 * task, queue, key, payload and meta (parsed, or JSON text when asText). A row
 * without a job (its id empty) carries only wake_ms.
 */
type ClaimRow = [string, string | null, string | null, string | null, unknown, unknown];

/** A number of the packed text; null where it held nothing. */
const orNull = (text: string | undefined): number | null => (text === undefined || text === "" ? null : Number(text));

/** A claimed job and what its claim order needs: its queue's place in the list, and microseconds. */
interface Ranked {
  job: ClaimedJob;
  queueRank: number;
  runUs: number;
  waitingSinceUs: number | null;
}

/**
 * Claim order: the jobs the database marked started first, as they were there;
 * then earlier queues, higher priority, earlier run time, lower id.
 */
function claimOrder(a: Ranked, b: Ranked): number {
  return (
    (a.waitingSinceUs === null ? 0 : 1) - (b.waitingSinceUs === null ? 0 : 1) ||
    a.queueRank - b.queueRank ||
    b.job.priority - a.job.priority ||
    a.runUs - b.runUs ||
    // ids are decimal text without leading zeros: the shorter is the smaller
    a.job.id.length - b.job.id.length || (a.job.id < b.job.id ? -1 : a.job.id > b.job.id ? 1 : 0)
  );
}

async function claimJobs(c: DbContext, text: string, asText: boolean, args: ClaimParams, signal?: AbortSignal): Promise<Claimed> {
  const result = await runRows(c, text, [
    JSON.stringify(args.queues), JSON.stringify(args.tasks), args.limit, args.workerId, args.now,
    Math.max(0, Math.min(args.ahead ?? 0, args.limit)),
  ], signal);
  const rank = new Map(args.queues.map((name, i) => [name, i]));
  let wakeMs: number | null = null;
  const ranked: Ranked[] = [];
  let inOrder = true;
  for (const r of result) {
    const [numbers, task, queue, key, payload, meta] = r as ClaimRow;
    const [id, priority, attempt, maxAttempts, timeoutMs, createdUs, runUsText, waitingUs, wake] = numbers.split(",");
    if (!id) {
      wakeMs = orNull(wake);
      continue;
    }
    // microseconds since the epoch stay exact as numbers (below 2^53)
    const runUs = Number(runUsText);
    const t: Ranked = {
      job: {
        id, task: task!, queue: queue!, payload: asText ? JSON.parse(payload as string) : payload, priority: Number(priority), attempt: Number(attempt), maxAttempts: Number(maxAttempts),
        timeoutMs: orNull(timeoutMs), key, createdAt: new Date(Number(createdUs) / 1000), runAt: new Date(runUs / 1000), meta: (meta === null ? null : asText ? JSON.parse(meta as string) : meta) as ClaimedJob["meta"],
      },
      queueRank: rank.get(queue!) ?? 0,
      runUs,
      waitingSinceUs: orNull(waitingUs),
    };
    if (inOrder && ranked.length > 0 && claimOrder(ranked[ranked.length - 1]!, t) > 0) inOrder = false;
    ranked.push(t);
  }
  // The statement's rows come in the order the rows lie in the table (the
  // update finds them by address), which for a backlog enqueued in order and
  // of one priority is claim order: hand them out in claim order, sorting only
  // when they are not in it (mixed priorities, retried or delayed jobs).
  if (!inOrder) ranked.sort(claimOrder);
  const unstarted = new Map<string, number>();
  const replyAt = performance.now();
  const jobs = ranked.map((t) => {
    if (t.waitingSinceUs !== null) unstarted.set(t.job.id, t.waitingSinceUs / 1000 - replyAt);
    return t.job;
  });
  return { jobs, wakeMs, unstarted };
}
