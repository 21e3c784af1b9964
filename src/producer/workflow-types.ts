import type { EnqueuedJob, JobStatus } from "../shared/types.ts";
import type { JobSpec } from "./types.ts";

/** Flows, batches and graphs as the queue takes and answers them (enqueueFlow, enqueueBatch, getBatch, getGraph). */

/** What a parent's failure or cancellation does to a child: fail it, cancel it, or run it anyway. */
export type ParentFailureMode = "fail" | "cancel" | "run";

/** One job of a flow (`enqueueFlow`): a job spec with a name, and the names of its parents. */
export interface FlowJobSpec<P = unknown> extends Omit<JobSpec<P>, "key" | "throttleMs" | "debounceMs"> {
  /** Names the job within the flow, for its children's `parents`. */
  name: string;
  /** Jobs of the same flow this one waits for; an entry may set the edge's own failure mode. */
  parents?: readonly (string | { name: string; onFailure?: ParentFailureMode })[];
  /** What a parent's failure or cancellation does to this job, for edges that do not say. @default "fail" */
  onParentFailure?: ParentFailureMode;
  key?: never;
  throttleMs?: never;
  debounceMs?: never;
}

/** A job of a flow as enqueued, with its name in the flow. */
export type FlowJob<P = unknown> = EnqueuedJob<P> & { name: string };

/**
 * Jobs that run when a batch's jobs end:
 * - `complete`: once every job has ended, whatever its status;
 * - `success`: once every job has completed (cancelled by the first failure or cancellation);
 * - `failure`: at the first job that fails or is cancelled (cancelled when every job completed).
 */
export interface BatchCallbacks {
  complete?: Omit<JobSpec, "key" | "throttleMs" | "debounceMs">;
  success?: Omit<JobSpec, "key" | "throttleMs" | "debounceMs">;
  failure?: Omit<JobSpec, "key" | "throttleMs" | "debounceMs">;
}

export interface EnqueuedBatch {
  id: string;
  /** The batch's jobs, in input order. */
  jobs: EnqueuedJob[];
  callbacks: { complete?: EnqueuedJob; success?: EnqueuedJob; failure?: EnqueuedJob };
}

export interface Batch {
  id: string;
  size: number;
  createdAt: Date;
  /** The batch's jobs (callbacks not included) by status. */
  counts: Record<JobStatus, number>;
  /** running until every job has ended; then completed when all completed, else failed. */
  state: "running" | "completed" | "failed";
  /** The callbacks' job ids. */
  callbacks: { complete?: string; success?: string; failure?: string };
}

/** A job's place in a graph: the jobs connected to it and the edges among them (`getGraph`). */
export interface JobGraph {
  nodes: { id: string; task: string; queue: string; status: JobStatus; progress: number; startedAt: string | null; finishedAt: string | null }[];
  /** parent id, child id, the edge's failure mode ("failure" for a batch's failure callback), and its state. */
  edges: { parent: string; child: string; mode: string; state: "waiting" | "settled" | "blocked" }[];
  /** More jobs are connected than the limit asked for. */
  truncated: boolean;
}
