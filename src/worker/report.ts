import type { Logger } from "../shared/logger.ts";
import type { Emitter } from "../shared/events.ts";
import type { ClaimedJob } from "../shared/types.ts";
import type { FinishResult, Outcome } from "./finisher.ts";
import type { QueueStatsRecorder } from "./queue-stats.ts";
import type { WorkerEvents, WorkerStats } from "./types.ts";

interface ReportDeps {
  workerId: string;
  logger: Logger;
  events: Emitter<WorkerEvents>;
  stats: WorkerStats;
  /** Per-queue counts for the per-minute figures; none when they are off. */
  queueStats?: QueueStatsRecorder | undefined;
}

/**
 * Counts an attempt's end in the worker's stats, logs it and emits its event,
 * once its write landed; an end the database refused (the job was no longer
 * this worker's) or that was never written is only logged, each saying which.
 */
export function reportOutcome(deps: ReportDeps, job: ClaimedJob, outcome: Outcome, result: FinishResult): void {
  const { events, stats, logger, workerId, queueStats } = deps;
  if (result.unwritten) {
    logger.warn(`job ${job.id}'s end (${outcome.kind}) could not be written; the job will be given back and run again`);
    return;
  }
  if (!result.applied) {
    logger.warn(`job ${job.id} was no longer this worker's when it ended (${outcome.kind}); its outcome was dropped`);
    return;
  }
  const base = { workerId, job };
  if (result.status === "completed") {
    stats.completed++;
    queueStats?.ended(job.queue, "completed");
    if (events.has("job:completed")) events.emit("job:completed", { ...base, result: outcome.kind === "completed" ? outcome.result : null });
  } else if (result.status === "cancelled") {
    stats.cancelled++;
    events.emit("job:cancelled", base);
  } else if (result.status === "failed" && "error" in outcome) {
    stats.failed++;
    queueStats?.ended(job.queue, "failed");
    logger.warn(`job ${job.id} (${job.task}) failed for good: ${outcome.error.message}`);
    events.emit("job:failed", { ...base, error: outcome.error });
  } else if (outcome.kind === "retry") {
    stats.retried++;
    queueStats?.ended(job.queue, "retried");
    logger.debug(`job ${job.id} (${job.task}) attempt ${job.attempt} failed, retrying in ${outcome.delayMs} ms`);
    events.emit("job:retried", { ...base, error: outcome.error, delayMs: outcome.delayMs });
  } else if (outcome.kind === "released") {
    stats.released++;
    events.emit("job:released", base);
  } else if (outcome.kind === "snoozed") {
    stats.snoozed++;
    events.emit("job:snoozed", { ...base, delayMs: outcome.delayMs });
  }
}
