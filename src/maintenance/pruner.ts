import * as v from "valibot";
import type { Db } from "../db/db.ts";
import { parseOrThrow, span } from "../producer/enqueue-options.ts";
import { PeriodicService } from "../shared/service.ts";
import type { MaintenanceDeps } from "./deps.ts";

/** How long finished jobs are kept. */
export interface RetentionOptions {
  /** Completed jobs older than this (since they finished) are deleted. @default 86_400_000 (one day) */
  completedMs?: number;
  /** Failed and cancelled jobs older than this are deleted. @default 1_209_600_000 (14 days) */
  failedMs?: number;
}

export const RETENTION_COMPLETED_MS_DEFAULT = 86_400_000;
export const RETENTION_FAILED_MS_DEFAULT = 14 * 86_400_000;
/**
 * Jobs one prune transaction takes in id order: short statements, short locks. The
 * other jobs of their batches go with them, since a batch's jobs go together.
 */
export const PRUNE_BATCH = 1000;

const ms = (what: string) => v.optional(span(what));
const retentionSchema = v.strictObject(
  { completedMs: ms("completedMs"), failedMs: ms("failedMs") },
  "unknown option; retention takes completedMs and failedMs",
);

/**
 * Deletes finished jobs past retention, a slice at a time in id order, until the
 * last slice found fewer than PRUNE_BATCH; returns how many. A job another
 * transaction held (or a batch with one) is left to the next pass.
 */
export async function prune(db: Pick<Db, "jobPruneBatch">, retention: RetentionOptions = {}, now: Date | null = null): Promise<number> {
  const r = parseOrThrow(retentionSchema, retention, "INVALID_INPUT", "");
  const completedMs = r.completedMs ?? RETENTION_COMPLETED_MS_DEFAULT;
  const failedMs = r.failedMs ?? RETENTION_FAILED_MS_DEFAULT;
  let total = 0;
  let after = "0";
  for (;;) {
    const slice = await db.jobPruneBatch({ completedMs, failedMs, limit: PRUNE_BATCH, now, after });
    if (slice === null) return total;
    total += slice.deleted;
    if (slice.next === null) return total;
    after = slice.next;
  }
}

export interface PrunerOptions extends MaintenanceDeps {
  db: Pick<Db, "jobPruneBatch">;
  retention: RetentionOptions;
  intervalMs: number;
}

/**
 * Deletes finished jobs past their retention, in slices of PRUNE_BATCH, so
 * the jobs table stays the size of its retention window. Only the worker
 * holding the prune lock does a pass, so workers do not scan the same rows.
 */
export class Pruner extends PeriodicService<number> {
  constructor(private o: PrunerOptions) {
    super(o);
  }

  /** One pass: how many jobs it deleted. */
  async runOnce(): Promise<number> {
    const { o } = this;
    const deleted = await prune(o.db, o.retention, o.dbNow());
    if (deleted > 0) {
      o.logger.info(`pruned ${deleted} finished job(s) past retention`);
      o.events.emit("jobs:pruned", { workerId: o.workerId, deleted });
    }
    return deleted;
  }
}
