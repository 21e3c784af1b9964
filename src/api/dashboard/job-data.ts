// What the job page shows besides the job: its place in a workflow (drawn, or
// its direct parents and children when the graph is large), its log lines and
// its batch. Each is bounded, so that a page of a job in a graph of thousands,
// or with thousands of lines, stays small and quick to make every refresh.
import { DROPPED_SEQ } from "../../db/logs.ts";
import type { JobLogLine, Queue } from "../../producer/types.ts";
import type { Batch, JobGraph } from "../../producer/workflow-types.ts";
import type { Job, JobStatus } from "../../shared/types.ts";

/** Most jobs drawn; a larger graph is listed as the job's parents and children. */
export const GRAPH_MAX_NODES = 60;
/** Most parents, and most children, listed when the graph is not drawn. */
export const NEIGHBOURS_SHOWN = 50;
/** Most log lines shown. */
export const LOG_LINES_SHOWN = 500;

export type EdgeState = JobGraph["edges"][number]["state"];

export interface Neighbour {
  id: string;
  task: string;
  status: JobStatus;
  /** The edge's failure mode. */
  mode: string;
  state: EdgeState;
}

export interface Workflow {
  /** The job's direct parents and children, counted. */
  parents: number;
  children: number;
  /** A parent whose failure or cancellation ended this job: retry that one, not this. */
  blockedBy: string | null;
  /** The graph to draw, or null when it is too large. */
  graph: JobGraph | null;
  /** When not drawn: up to NEIGHBOURS_SHOWN of each, by id. */
  parentList: Neighbour[];
  childList: Neighbour[];
}

export interface JobLogs {
  /** The first LOG_LINES_SHOWN lines, in order. */
  lines: JobLogLine[];
  /** More lines were kept than are shown. */
  more: boolean;
  /** The line that counts lines dropped past the caps, when `more` left it out of `lines`. */
  dropped: JobLogLine | null;
}

export interface BatchView {
  batch: Batch;
  /** The callbacks given, each with its job (null if pruned). */
  callbacks: { kind: "complete" | "success" | "failure"; id: string; job: Job | null }[];
}

export interface JobExtras {
  /** Null when the job has no parents and no children. */
  workflow: Workflow | null;
  logs: JobLogs;
  batch: BatchView | null;
}

const STATES: Record<string, EdgeState> = { w: "waiting", d: "settled", b: "blocked" };

/** Reads what the job page shows besides the job, in parallel. */
export async function loadJobExtras(queue: Queue, job: Job): Promise<JobExtras> {
  const [workflow, logs, batch] = await Promise.all([loadWorkflow(queue, job.id), loadLogs(queue, job.id), job.batchId ? loadBatch(queue, job.batchId) : null]);
  return { workflow, logs, batch };
}

async function loadWorkflow(queue: Queue, id: string): Promise<Workflow | null> {
  const row = await queue.db.flowNeighbours(id, NEIGHBOURS_SHOWN);
  if (row.parents + row.children === 0) return null;
  const base = { parents: row.parents, children: row.children, blockedBy: row.blocked_by };
  // Direct neighbours alone too many to draw: the graph is not read at all.
  const graph = row.parents + row.children + 1 > GRAPH_MAX_NODES ? null : await queue.getGraph(id, { limit: GRAPH_MAX_NODES });
  if (graph && !graph.truncated && graph.nodes.length <= GRAPH_MAX_NODES) return { ...base, graph, parentList: [], childList: [] };
  const list = (side: "parent" | "child") =>
    row.edges.filter((e) => e[0] === side).map(([, nid, task, status, mode, state]) => ({ id: nid, task, status, mode, state: STATES[state] ?? "waiting" }));
  return { ...base, graph: null, parentList: list("parent"), childList: list("child") };
}

async function loadLogs(queue: Queue, id: string): Promise<JobLogs> {
  const lines = await queue.getJobLogs(id, { limit: LOG_LINES_SHOWN + 1 });
  if (lines.length <= LOG_LINES_SHOWN) return { lines, more: false, dropped: null };
  const [dropped] = await queue.getJobLogs(id, { after: DROPPED_SEQ - 1, limit: 1 });
  return { lines: lines.slice(0, LOG_LINES_SHOWN), more: true, dropped: dropped ?? null };
}

async function loadBatch(queue: Queue, id: string): Promise<BatchView | null> {
  const batch = await queue.getBatch(id);
  if (!batch) return null;
  const kinds = (["complete", "success", "failure"] as const).filter((k) => batch.callbacks[k] !== undefined);
  const jobs = await Promise.all(kinds.map((k) => queue.getJob(batch.callbacks[k]!)));
  return { batch, callbacks: kinds.map((kind, i) => ({ kind, id: batch.callbacks[kind]!, job: jobs[i] ?? null })) };
}
