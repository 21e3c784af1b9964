import type { JobStatus } from "../shared/types.ts";

/** The job filter and the bulk operations' options and answer (retryJobs, cancelJobs, deleteJobs). */

/**
 * Which jobs to list, retry, cancel or delete: every field given must match.
 * Times are Dates or ISO 8601 text (`2026-11-29`, `2026-11-29T10:00:00Z`; UTC
 * when it has no offset); ranges include their start and exclude their end.
 */
export interface JobFilter {
  status?: JobStatus;
  queue?: string;
  task?: string;
  /** The group given at enqueue (`group`). */
  group?: string;
  /** The key given at enqueue (`key`). */
  key?: string;
  /** Created at or after this time. */
  createdFrom?: Date | string;
  /** Created before this time. */
  createdTo?: Date | string;
  /** Finished (completed, failed or cancelled) at or after this time. */
  finishedFrom?: Date | string;
  /** Finished before this time. */
  finishedTo?: Date | string;
  /** The payload contains this JSON (Postgres's `@>`): `{ user: 42 }` matches `{ user: 42, plan: "pro" }`. */
  payload?: unknown;
}

export interface ListJobsFilter extends JobFilter {
  /** @default 50, at most 500 */
  limit?: number;
  /** The `nextCursor` of the previous page. */
  cursor?: string;
}

/** Options of retryJobs, cancelJobs and deleteJobs. */
export interface BulkOptions {
  /** Rows one batch changes: one short transaction, and its locks held only that long. @default 1000, at most 10,000 */
  batchSize?: number;
  /** Change nothing: count the jobs it would find, and those it would skip and why (`changed` is then what it would change). */
  dryRun?: boolean;
  /** Called after each batch with the counts so far. A throw stops the operation there; the batches before it stay done. */
  onProgress?: (progress: BulkResult) => void;
}

export interface DeleteJobsOptions extends BulkOptions {
  /** Delete every finished job: needed when the filter names none (else EMPTY_FILTER). */
  all?: boolean;
}

/** What retryJobs, cancelJobs and deleteJobs did. `matched` = `changed` + `skipped`. */
export interface BulkResult {
  /**
   * Jobs the filter matched in a state the operation applies to: failed or cancelled
   * (retry); pending, queued or running (cancel); completed, failed or cancelled (delete).
   */
  matched: number;
  /** Jobs retried, cancelled (a running one: asked to stop), or deleted. */
  changed: number;
  /** Matched but left as they were: the sum of `reasons`. */
  skipped: number;
  reasons: {
    /** retry: another live job holds the job's key, or an earlier job of this retry took it. */
    key: number;
    /**
     * retry: a parent stands failed or cancelled with an edge that fails or cancels the job
     * (or its failure ended it): retry the parent, and the job runs after it, as `retry` says.
     */
    parent: number;
    /** delete: a child of the job has not completed (it reads the job's result when it runs, and may be retried), as the pruner keeps it. */
    children: number;
    /**
     * delete: the job is of a batch, whose jobs are deleted together or not at all (its state is read
     * from the jobs it has left), and another job of the batch is not finished, not matched by the
     * filter, or has a child that has not completed.
     */
    batch: number;
    /**
     * Another transaction held the job every time the operation came to it (three returns); for a
     * delete, or held another job of its batch.
     */
    busy: number;
  };
  /** cancel: running jobs asked to stop (counted in `changed`); each ends as cancelled when its handler stops. */
  stopping: number;
  /** Batches run, each its own transaction. */
  batches: number;
  /** True for a dry run: nothing was changed, and the counts say what would be. */
  dryRun: boolean;
}
