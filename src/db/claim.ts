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

/** The numbers of a packed text (claimSql), by field; read by unpack(). */
const NUMBERS = new Float64Array(9);
/** 1 where the packed text's field held nothing (null). */
const EMPTY = new Uint8Array(9);

/**
 * Reads a claim row's packed text ("id,priority,...", claimSql) in one pass:
 * fields 1 to 8 into NUMBERS and EMPTY, and returns the id (field 0, "" for a
 * row without a job). The fields are integers the statement wrote; each is
 * exact as a float64 (microseconds since the epoch are below 2^53). One pass
 * without split() makes no string per field: about 0.3 us a job less.
 */
function unpack(text: string): string {
  let field = 0;
  let value = 0;
  let negative = false;
  let empty = true;
  let idEnd = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 44;
    if (c === 44 /* , */) {
      if (field === 0) idEnd = i;
      else if (field < 9) {
        NUMBERS[field] = negative ? -value : value;
        EMPTY[field] = empty ? 1 : 0;
      }
      field++;
      value = 0;
      negative = false;
      empty = true;
    } else if (c === 45 /* - */) negative = true;
    else {
      value = value * 10 + (c - 48);
      empty = false;
    }
  }
  return text.slice(0, idEnd);
}

/** Field k of the text unpack() read last; null where it held nothing. */
const numberAt = (k: number): number | null => (EMPTY[k] ? null : NUMBERS[k]!);

/**
 * What claim order needs of each job beyond the job itself, in arrays beside
 * the jobs (an object per job would be one more allocation a job, for a sort
 * that a backlog in order never needs).
 */
interface Order {
  jobs: ClaimedJob[];
  queueRank: number[];
  runUs: number[];
  /** When the database left the job unstarted (claimed ahead): microseconds since the epoch; null: started there. */
  waitingSinceUs: (number | null)[];
}

/**
 * Claim order of the jobs at i and k: the jobs the database marked started
 * first, as they were there; then earlier queues, higher priority, earlier run
 * time, lower id.
 */
function claimOrder(o: Order, i: number, k: number): number {
  const a = o.jobs[i]!;
  const b = o.jobs[k]!;
  return (
    (o.waitingSinceUs[i] === null ? 0 : 1) - (o.waitingSinceUs[k] === null ? 0 : 1) ||
    o.queueRank[i]! - o.queueRank[k]! ||
    b.priority - a.priority ||
    o.runUs[i]! - o.runUs[k]! ||
    // ids are decimal text without leading zeros: the shorter is the smaller
    a.id.length - b.id.length || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  );
}

async function claimJobs(c: DbContext, text: string, asText: boolean, args: ClaimParams, signal?: AbortSignal): Promise<Claimed> {
  const result = await runRows(c, text, [
    JSON.stringify(args.queues), JSON.stringify(args.tasks), args.limit, args.workerId, args.now,
    Math.max(0, Math.min(args.ahead ?? 0, args.limit)),
  ], signal);
  const rank = new Map(args.queues.map((name, i) => [name, i]));
  let wakeMs: number | null = null;
  const o: Order = { jobs: [], queueRank: [], runUs: [], waitingSinceUs: [] };
  let inOrder = true;
  // (indexed reads, not destructuring: this loop runs once per job claimed)
  for (let r = 0; r < result.length; r++) {
    const row = result[r] as ClaimRow;
    const id = unpack(row[0]);
    if (id === "") {
      wakeMs = numberAt(8);
      continue;
    }
    const runUs = NUMBERS[6]!;
    const queue = row[2]!;
    const payload = row[4];
    const meta = row[5];
    o.jobs.push({
      id, task: row[1]!, queue, payload: asText ? JSON.parse(payload as string) : payload, priority: NUMBERS[1]!, attempt: NUMBERS[2]!,
      maxAttempts: NUMBERS[3]!, timeoutMs: numberAt(4), key: row[3], createdAt: new Date(NUMBERS[5]! / 1000), runAt: new Date(runUs / 1000),
      meta: (meta === null ? null : asText ? JSON.parse(meta as string) : meta) as ClaimedJob["meta"],
    });
    o.queueRank.push(rank.get(queue) ?? 0);
    o.runUs.push(runUs);
    o.waitingSinceUs.push(numberAt(7));
    const last = o.jobs.length - 1;
    if (inOrder && last > 0 && claimOrder(o, last - 1, last) > 0) inOrder = false;
  }
  // The statement's rows come in the order the rows lie in the table (the
  // update finds them by address), which for a backlog enqueued in order and
  // of one priority is claim order: hand them out in claim order, sorting only
  // when they are not in it (mixed priorities, retried or delayed jobs).
  const jobs = inOrder ? o.jobs : o.jobs.map((_, i) => i).sort((i, k) => claimOrder(o, i, k)).map((i) => o.jobs[i]!);
  const unstarted = new Map<string, number>();
  const replyAt = performance.now();
  for (let i = 0; i < o.jobs.length; i++) {
    const since = o.waitingSinceUs[i];
    if (since !== null && since !== undefined) unstarted.set(o.jobs[i]!.id, since / 1000 - replyAt);
  }
  return { jobs, wakeMs, unstarted };
}
