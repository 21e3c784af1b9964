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
 * Claims runnable jobs through the schema's claim_rows() function
 * (sql/000008, around claim() of sql/000003): one round trip, whatever mix of
 * limited and unlimited queues the worker serves, a row per job with its times
 * in microseconds since the epoch. Lists travel as JSON text, not as Postgres
 * arrays: postgres.js can only encode array parameters once it has fetched the
 * connection's types, which on some runtimes (Deno) races the first query.
 */
export function claimSql(q: string): string {
  return `select * from ${q}.claim_rows($1::text::jsonb, $2::text::jsonb, $3::integer, $4::text, $5::timestamptz, $6::integer)`;
}

export function claimOps(c: DbContext, text: string) {
  return {
    /** Claims runnable jobs for a worker, in claim order. */
    jobClaim: (args: ClaimParams) => claimJobs(c, text, args),
  };
}

/** A row of claim_rows(): int8 columns arrive as text, json as values. */
interface ClaimRow {
  id: string | null;
  task: string;
  queue: string;
  payload: unknown;
  priority: number;
  attempt: number;
  max_attempts: number;
  timeout_ms: number | null;
  key: string | null;
  created_us: string;
  run_us: string;
  waiting_since_us: string | null;
  meta: Record<string, string> | null;
  wake_ms: string | null;
}

/** A claimed job and the microseconds its claim order needs. */
interface Ranked {
  job: ClaimedJob;
  runUs: number;
  waitingSinceUs: number | null;
}

async function claimJobs(c: DbContext, text: string, args: ClaimParams): Promise<Claimed> {
  const rows = (await run(c, text, [
    JSON.stringify(args.queues), JSON.stringify(args.tasks), args.limit, args.workerId, args.now,
    Math.max(0, Math.min(args.ahead ?? 0, args.limit)),
  ])) as unknown as ClaimRow[];
  let wakeMs: number | null = null;
  const ranked: Ranked[] = [];
  for (const r of rows) {
    if (r.id === null) {
      wakeMs = r.wake_ms === null ? null : Number(r.wake_ms);
      continue;
    }
    // microseconds since the epoch stay exact as numbers (below 2^53)
    const runUs = Number(r.run_us);
    ranked.push({
      job: {
        id: r.id, task: r.task, queue: r.queue, payload: r.payload, priority: r.priority, attempt: r.attempt,
        maxAttempts: r.max_attempts, timeoutMs: r.timeout_ms, key: r.key,
        createdAt: new Date(Number(r.created_us) / 1000), runAt: new Date(runUs / 1000), meta: r.meta ?? null,
      },
      runUs,
      waitingSinceUs: r.waiting_since_us === null ? null : Number(r.waiting_since_us),
    });
  }
  // The statement's rows come in no set order; hand them out in claim order. The jobs
  // the database marked started come first, as they did there.
  const rank = new Map(args.queues.map((name, i) => [name, i]));
  const later = (t: Ranked) => (t.waitingSinceUs === null ? 0 : 1);
  ranked.sort(
    (a, b) =>
      later(a) - later(b) ||
      rank.get(a.job.queue)! - rank.get(b.job.queue)! ||
      b.job.priority - a.job.priority ||
      a.runUs - b.runUs ||
      // ids are decimal text without leading zeros: the shorter is the smaller
      a.job.id.length - b.job.id.length || (a.job.id < b.job.id ? -1 : 1),
  );
  const unstarted = new Map<string, number>();
  const replyAt = performance.now();
  const jobs = ranked.map((t) => {
    if (t.waitingSinceUs !== null) unstarted.set(t.job.id, t.waitingSinceUs / 1000 - replyAt);
    return t.job;
  });
  return { jobs, wakeMs, unstarted };
}
