// GET /metrics: Prometheus text format (version 0.0.4), read from the tables on
// each scrape. The totals count the jobs in the table, so they fall when old
// jobs are deleted; Prometheus treats a fall as a counter reset.
import type { Queue } from "../producer/types.ts";
import { RUN_SECONDS_BUCKETS } from "../db/status.ts";

const STATES = ["pending", "waiting", "scheduled", "running", "completed", "failed", "cancelled"] as const;

/** Renders the metrics for one queue handle (its schema). */
export async function renderMetrics(queue: Queue): Promise<string> {
  const [rows, workers] = await Promise.all([queue.db.metrics(), queue.listWorkers()]);
  const out: string[] = [];
  const family = (name: string, type: string, help: string) => out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);

  family("pgpulse_jobs", "gauge", "Jobs by queue and state; pending wait for their parents, waiting are runnable now, scheduled are queued for later.");
  for (const r of rows) for (const s of STATES) out.push(`pgpulse_jobs${labels({ queue: r.queue, state: s })} ${num(r[s])}`);

  family("pgpulse_queue_oldest_waiting_seconds", "gauge", "Age of the oldest job runnable now; 0 when none waits.");
  for (const r of rows) out.push(`pgpulse_queue_oldest_waiting_seconds${labels({ queue: r.queue })} ${num(r.oldest_waiting_s)}`);

  family("pgpulse_jobs_processed_total", "counter", "Jobs a worker ran to a final outcome (completed or failed).");
  for (const r of rows) out.push(`pgpulse_jobs_processed_total${labels({ queue: r.queue })} ${num(r.completed) + num(r.failed)}`);

  family("pgpulse_jobs_failed_total", "counter", "Jobs that failed for good.");
  for (const r of rows) out.push(`pgpulse_jobs_failed_total${labels({ queue: r.queue })} ${num(r.failed)}`);

  family("pgpulse_job_attempt_errors_total", "counter", "Failed attempts, retried or not.");
  for (const r of rows) out.push(`pgpulse_job_attempt_errors_total${labels({ queue: r.queue })} ${num(r.attempt_errors)}`);

  family("pgpulse_job_run_seconds", "histogram", "Run time of the last attempt of completed and failed jobs.");
  for (const r of rows) {
    RUN_SECONDS_BUCKETS.forEach((le, i) => out.push(`pgpulse_job_run_seconds_bucket${labels({ queue: r.queue, le: String(le) })} ${num(r[`le_${i}`])}`));
    out.push(`pgpulse_job_run_seconds_bucket${labels({ queue: r.queue, le: "+Inf" })} ${num(r.run_count)}`);
    out.push(`pgpulse_job_run_seconds_sum${labels({ queue: r.queue })} ${num(r.run_sum)}`);
    out.push(`pgpulse_job_run_seconds_count${labels({ queue: r.queue })} ${num(r.run_count)}`);
  }

  family("pgpulse_workers", "gauge", "Live workers (those holding a heartbeat row).");
  out.push(`pgpulse_workers ${workers.length}`);
  family("pgpulse_worker_running_jobs", "gauge", "Jobs each live worker is running.");
  for (const w of workers) out.push(`pgpulse_worker_running_jobs${labels({ worker: w.id })} ${w.running}`);
  family("pgpulse_worker_heartbeat_age_seconds", "gauge", "Time since each live worker's last heartbeat.");
  for (const w of workers) out.push(`pgpulse_worker_heartbeat_age_seconds${labels({ worker: w.id })} ${w.heartbeatAgeMs / 1000}`);

  return `${out.join("\n")}\n`;
}

function labels(values: Record<string, string>): string {
  const parts = Object.entries(values).map(([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`);
  return `{${parts.join(",")}}`;
}

function num(value: unknown): number {
  const n = typeof value === "string" ? Number(value) : (value as number);
  return Number.isFinite(n) ? n : 0;
}
