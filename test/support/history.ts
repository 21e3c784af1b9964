// Test-only: the run history the fault tests assert on. Every handler invocation
// writes a row into <schema>.runs before doing anything else (see
// test/fixtures/fault-worker.mjs); together with the jobs table (status, attempts,
// per-attempt errors, result) that is the full history of every job.
import type postgres from "postgres";

export interface RunRow {
  jobId: string;
  attempt: number;
  workerId: string;
  task: string;
  /** When the run was recorded (database time; the handler's first write). */
  at: Date;
  /** When the handler began (the worker's real clock; before its first write, which may wait out an outage). */
  began: Date;
  info: Record<string, unknown> | null;
}

export interface JobRow {
  id: string;
  queue: string;
  task: string;
  status: string;
  attempts: number;
  maxAttempts: number;
  errors: { attempt: number; name: string; message: string; worker: string; at: string; unstarted?: boolean }[];
  result: Record<string, unknown> | null;
  workerId: string | null;
  createdAt: Date;
  runAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  payload: unknown;
}

export interface History {
  jobs: Map<string, JobRow>;
  runs: Map<string, RunRow[]>;
  totalRuns: number;
}

export async function createHistoryTable(sql: postgres.Sql, schema: string): Promise<void> {
  await sql.unsafe(`
    create table if not exists "${schema}".runs (
      nonce uuid primary key,
      job_id bigint not null,
      attempt integer not null,
      worker_id text not null,
      pid integer not null,
      task text not null,
      at timestamptz not null default clock_timestamp(),
      began timestamptz,
      info jsonb
    );
    create index if not exists runs_job_idx on "${schema}".runs (job_id);`).simple();
}

/** Loads the jobs (optionally of some queues) and every run of them. */
export async function loadHistory(sql: postgres.Sql, schema: string, queues?: string[]): Promise<History> {
  const s = `"${schema}"`;
  const where = queues ? `where queue in (select jsonb_array_elements_text($1::text::jsonb))` : "";
  const jobRows = await sql.unsafe(
    `select id::text, queue, task, status::text, attempts, max_attempts, errors, result, worker_id, created_at, run_at,
            started_at, finished_at, ${queues ? "payload" : "null as payload"}
       from ${s}.jobs ${where}`,
    queues ? [JSON.stringify(queues)] : [],
  );
  const jobs = new Map<string, JobRow>();
  for (const r of jobRows) {
    jobs.set(r.id, {
      id: r.id, queue: r.queue, task: r.task, status: r.status, attempts: r.attempts, maxAttempts: r.max_attempts,
      errors: r.errors, result: r.result, workerId: r.worker_id, createdAt: r.created_at, runAt: r.run_at,
      startedAt: r.started_at, finishedAt: r.finished_at, payload: r.payload,
    });
  }
  const runRows = await sql.unsafe(`select job_id::text, attempt, worker_id, task, at, coalesce(began, at) as began, info from ${s}.runs order by at`);
  const runs = new Map<string, RunRow[]>();
  let totalRuns = 0;
  for (const r of runRows) {
    if (!jobs.has(r.job_id)) continue;
    totalRuns++;
    const list = runs.get(r.job_id) ?? [];
    list.push({ jobId: r.job_id, attempt: r.attempt, workerId: r.worker_id, task: r.task, at: r.at, began: r.began, info: r.info });
    runs.set(r.job_id, list);
  }
  return { jobs, runs, totalRuns };
}

export interface Audit {
  jobs: number;
  runs: number;
  byStatus: Record<string, number>;
  /** Expected (acknowledged) jobs that are not in the table at all. */
  missing: string[];
  /** Jobs not in the final state the test expects. */
  wrongState: { id: string; status: string }[];
  /** Completed jobs whose result does not name a recorded run of their last attempt. */
  completedWithoutRun: string[];
  /** Jobs whose attempts before the last left no error record: an attempt that vanished. */
  silentAttempts: { id: string; attempts: number; errorAttempts: number[] }[];
  /** Jobs whose handler ran more than once, with how many times. */
  ranMoreThanOnce: Map<string, number>;
  /** Extra runs (runs minus one per job that ran). */
  extraRuns: number;
  /** Jobs that never ran although they are completed or failed by a handler. */
  neverRan: string[];
}

/**
 * Checks the whole history against the invariants every fault test shares:
 * nothing acknowledged is missing, every job is in the expected final state, a
 * completed job's result comes from a recorded run of its last attempt, and
 * every attempt but the last left an error record (no attempt vanished).
 */
export function audit(
  history: History,
  expect: { ids?: Iterable<string>; status?: string | ((job: JobRow) => string) } = {},
): Audit {
  const byStatus: Record<string, number> = {};
  const missing: string[] = [];
  const wrongState: { id: string; status: string }[] = [];
  const completedWithoutRun: string[] = [];
  const silentAttempts: Audit["silentAttempts"] = [];
  const ranMoreThanOnce = new Map<string, number>();
  const neverRan: string[] = [];
  let extraRuns = 0;
  for (const id of expect.ids ?? []) if (!history.jobs.has(id)) missing.push(id);
  for (const job of history.jobs.values()) {
    byStatus[job.status] = (byStatus[job.status] ?? 0) + 1;
    const want = typeof expect.status === "function" ? expect.status(job) : (expect.status ?? "completed");
    if (job.status !== want) wrongState.push({ id: job.id, status: job.status });
    const runs = history.runs.get(job.id) ?? [];
    if (runs.length > 1) {
      ranMoreThanOnce.set(job.id, runs.length);
      extraRuns += runs.length - 1;
    }
    if (job.status === "completed") {
      const r = job.result as { by?: string; attempt?: number } | null;
      if (!r || r.attempt !== job.attempts || !runs.some((run) => run.attempt === job.attempts && run.workerId === r.by)) {
        completedWithoutRun.push(job.id);
      }
      if (runs.length === 0) neverRan.push(job.id);
    }
    if (job.status === "completed" || job.status === "failed" || job.status === "queued") {
      const last = job.status === "completed" || job.status === "queued" ? job.attempts - 1 : job.attempts;
      const errorAttempts = [...new Set(job.errors.map((e) => e.attempt))].sort((a, b) => a - b);
      for (let a = 1; a <= last; a++) {
        if (!errorAttempts.includes(a)) {
          silentAttempts.push({ id: job.id, attempts: job.attempts, errorAttempts });
          break;
        }
      }
    }
  }
  return {
    jobs: history.jobs.size, runs: history.totalRuns, byStatus, missing, wrongState, completedWithoutRun,
    silentAttempts, ranMoreThanOnce, extraRuns, neverRan,
  };
}

/** A one-line figure for logs and the README. */
export function summary(a: Audit): string {
  return `${a.jobs} jobs (${Object.entries(a.byStatus).map(([k, v]) => `${v} ${k}`).join(", ")}), ${a.runs} runs, ` +
    `${a.ranMoreThanOnce.size} ran more than once (${a.extraRuns} extra runs), ${a.missing.length} missing, ` +
    `${a.wrongState.length} in the wrong state, ${a.silentAttempts.length} with a vanished attempt`;
}

/** Percentile of a list of numbers (nearest rank). */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** Appends a figure line to the fault-run report (FAULTS_REPORT file, if set) and prints it. */
export async function reportFigure(scenario: string, figures: Record<string, unknown>): Promise<void> {
  const line = JSON.stringify({ scenario, at: new Date().toISOString(), ...figures });
  console.log(`[faults] ${line}`);
  const file = process.env.FAULTS_REPORT;
  if (file) {
    const { appendFileSync } = await import("node:fs");
    appendFileSync(file, `${line}\n`);
  }
}

export interface RerunCauses {
  /** Database crashes: from the stop to the server accepting connections again (ms, wall clock of this machine, which the database shares). */
  crashes?: { from: number; to: number }[];
  /** Leases lost: the worker and when it found out (ms). */
  leasesLost?: { worker: string; at: number }[];
}

/**
 * Sorts every job that ran more than once by what explains it:
 * - "worker lost": a WorkerLostError records that its worker died or stopped heartbeating;
 * - "lease lost": an earlier run was on a worker that found its lease gone afterwards;
 * - "database crash": a run that began before the server was back from a crash, and a later
 *   one that began after the crash started (a claim or an end committed without waiting for
 *   the disk is lost with the crash: the job runs again);
 * and "unexplained" for the rest, which must be none.
 */
export function explainReruns(history: History, causes: RerunCauses = {}) {
  const out = { workerLost: [] as string[], leaseLost: [] as string[], databaseCrash: [] as string[], unexplained: [] as string[] };
  for (const [id, runs] of history.runs) {
    if (runs.length < 2) continue;
    const job = history.jobs.get(id)!;
    if (job.errors.some((e) => e.name === "WorkerLostError")) {
      out.workerLost.push(id);
      continue;
    }
    const earlier = runs.slice(0, -1);
    if (earlier.some((r) => (causes.leasesLost ?? []).some((l) => l.worker === r.workerId && l.at >= r.at.getTime()))) {
      out.leaseLost.push(id);
      continue;
    }
    const began = runs.map((r) => r.began.getTime()).sort((x, y) => x - y);
    if ((causes.crashes ?? []).some((c) => began[0]! <= c.to && began[began.length - 1]! >= c.from)) {
      out.databaseCrash.push(id);
      continue;
    }
    out.unexplained.push(id);
  }
  return out;
}
