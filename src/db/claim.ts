import type { ClaimedJob } from "../shared/types.ts";
import { type DbContext, run } from "./context.ts";

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
 * Claims runnable jobs through the schema's claim_json() function
 * (sql/000005, around claim() of sql/000003): one round trip, whatever mix of
 * limited and unlimited queues the worker serves, and one JSON value back for
 * all the jobs claimed, which the client parses at once rather than column by
 * column. Lists travel as JSON text, not as Postgres arrays: postgres.js can
 * only encode array parameters once it has fetched the connection's types,
 * which on some runtimes (Deno) races the first query.
 */
export function claimSql(q: string): string {
  return `select * from ${q}.claim_json($1::text::jsonb, $2::text::jsonb, $3::integer, $4::text, $5::timestamptz, $6::integer)`;
}

export function claimOps(c: DbContext, text: string) {
  return {
    /** Claims runnable jobs for a worker, in claim order. */
    jobClaim: (args: ClaimParams) => claimJobs(c, text, args),
  };
}

/** A claimed job as claim_json() encodes it: [id, task, queue, payload, priority, attempt, max_attempts, timeout_ms, key, created_ms, run_ms, waiting_since_ms, meta]. */
type JobTuple = [string, string, string, unknown, number, number, number, number | null, string | null, number, number, number | null, Record<string, string> | null];

async function claimJobs(c: DbContext, text: string, args: ClaimParams): Promise<Claimed> {
  const [row] = await run(c, text, [
    JSON.stringify(args.queues), JSON.stringify(args.tasks), args.limit, args.workerId, args.now,
    Math.max(0, Math.min(args.ahead ?? 0, args.limit)),
  ]);
  const wakeMs = row?.wake_ms === null || row?.wake_ms === undefined ? null : Number(row.wake_ms);
  const tuples = (row?.jobs ?? []) as JobTuple[];
  // The statement's rows come in no set order; hand them out in claim order. The jobs
  // the database marked started come first, as they did there; run_ms keeps the
  // microseconds the database ordered by (a Date would not).
  const rank = new Map(args.queues.map((name, i) => [name, i]));
  const later = (t: JobTuple) => (t[11] === null ? 0 : 1);
  tuples.sort(
    (a, b) =>
      later(a) - later(b) ||
      rank.get(a[2])! - rank.get(b[2])! ||
      b[4] - a[4] ||
      a[10] - b[10] ||
      // ids are decimal text without leading zeros: the shorter is the smaller
      a[0].length - b[0].length || (a[0] < b[0] ? -1 : 1),
  );
  const unstarted = new Map<string, number>();
  const replyAt = performance.now();
  const jobs: ClaimedJob[] = tuples.map(([id, task, queue, payload, priority, attempt, maxAttempts, timeoutMs, key, createdMs, runMs, waitingSinceMs, meta]) => {
    if (waitingSinceMs !== null) unstarted.set(id, waitingSinceMs - replyAt);
    return {
      id, task, queue, payload, priority, attempt, maxAttempts, timeoutMs, key, createdAt: new Date(createdMs), runAt: new Date(runMs),
      meta: meta ?? null,
    };
  });
  return { jobs, wakeMs, unstarted };
}
