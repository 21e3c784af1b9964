import type { JobStatus } from "../shared/types.ts";
import { type DbContext, run, runRows } from "./context.ts";

/** One attempt's end, as the finish statement takes it. */
export interface FinishRow {
  id: string;
  attempt: number;
  kind: "completed" | "retry" | "failed" | "cancelled" | "released" | "snoozed";
  result: unknown;
  error: unknown;
  delay_ms: number | null;
  /** For a job claimed ahead: when it really started (ms since the epoch, database clock). */
  started_ms: number | null;
}

/** A running job's progress or start, as the progress statement takes it. */
export interface ProgressRow {
  id: string;
  attempt: number;
  percent: number | null;
  started_ms: number | null;
}

/** finish()'s answer, a letter per end: the status it reached; '-' (absent here) for a stale end. */
const STATUS_OF_LETTER: Record<string, JobStatus | undefined> = { c: "completed", q: "queued", f: "failed", x: "cancelled" };

const KIND_LETTER: Record<FinishRow["kind"], string> = {
  completed: "c", retry: "r", failed: "f", cancelled: "x", released: "l", snoozed: "s",
};

/**
 * A number as an element of a Postgres array literal: arrays travel as text
 * (see claim.ts). What is not a finite number (null, undefined, NaN) is NULL,
 * as JSON made it before: one bad value must not make the whole batch's write
 * fail for good.
 */
function element(v: number | string | null | undefined): string {
  if (typeof v === "number") return Number.isFinite(v) ? String(v) : "NULL";
  return v === null || v === undefined || !Number.isFinite(Number(v)) ? "NULL" : v;
}

/**
 * The ends as finish() (sql/000005) takes them: parallel arrays (a
 * letter per kind), and JSON arrays only when some end has a result or an
 * error. One pass over the ends: a worker draining a backlog writes tens of
 * thousands a second.
 */
export function endParams(rows: readonly FinishRow[]): [string, string, string, string | null, string | null, string, string] {
  let results = false;
  let errors = false;
  let ids = "";
  let attempts = "";
  let kinds = "";
  let delays = "";
  let starts = "";
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    const sep = i === 0 ? "" : ",";
    ids += sep + element(r.id);
    attempts += sep + element(r.attempt);
    kinds += sep + KIND_LETTER[r.kind];
    delays += sep + element(r.delay_ms);
    starts += sep + element(r.started_ms);
    if (r.result !== null && r.result !== undefined) results = true;
    if (r.error !== null && r.error !== undefined) errors = true;
  }
  return [
    `{${ids}}`,
    `{${attempts}}`,
    `{${kinds}}`,
    results ? JSON.stringify(rows.map((r) => r.result ?? null)) : null,
    errors ? JSON.stringify(rows.map((r) => r.error ?? null)) : null,
    `{${delays}}`,
    `{${starts}}`,
  ];
}

/**
 * Writes many attempts' ends in one statement, through the schema's finish()
 * function (sql/000005), which says what each guard, kind and column means.
 */
export function finishSql(q: string): string {
  return `select * from ${q}.finish($1::text, $2::text::bigint[], $3::text::integer[], $4::text::text[], $5::text::jsonb,
    $6::text::jsonb, $7::text::bigint[], $8::text::float8[], $9::timestamptz)`;
}

/**
 * Writes running jobs' progress, and the start of jobs claimed ahead, in one
 * statement. Neither column is indexed: with the jobs table's fillfactor
 * these are HOT updates.
 */
export function progressSql(q: string): string {
  return `
    update ${q}.jobs j set
      progress = coalesce(f.percent, j.progress),
      started_at = coalesce(j.started_at, to_timestamp(f.started_ms / 1000))
    from jsonb_to_recordset($1::text::jsonb) as f(id bigint, attempt integer, percent smallint, started_ms float8)
    where j.id = f.id and j.attempts = f.attempt and j.worker_id = $2 and j.status = 'running'
      and (j.progress is distinct from coalesce(f.percent, j.progress) or (j.started_at is null and f.started_ms is not null))`;
}

export function finishOps(c: DbContext, t: { finish: string; progress: string }) {
  return {
    /**
     * Writes attempts' ends; returns, for each row in order, the status its
     * job reached, or null for an end that was stale (the job was no longer
     * this worker's, or no longer at that attempt).
     */
    async jobFinishMany(rows: readonly FinishRow[], workerId: string, now: Date | null): Promise<(JobStatus | null)[]> {
      if (rows.length === 0) return [];
      // (read by position: runJobs of pgpulse/testing writes ends in the caller's transaction)
      const [row] = await runRows(c, t.finish, [workerId, ...endParams(rows), now]);
      const letters = (row?.[0] ?? "") as string;
      return rows.map((_, i) => STATUS_OF_LETTER[letters[i]!] ?? null);
    },
    /** Writes progress and starts of jobs still running on this worker. */
    async jobProgressMany(rows: readonly ProgressRow[], workerId: string): Promise<void> {
      await run(c, t.progress, [JSON.stringify(rows), workerId]);
    },
  };
}
