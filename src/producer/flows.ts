import type { DbOps } from "../db/db.ts";
import { PgPulseError } from "../shared/errors.ts";
import type { EnqueuedJob } from "../shared/types.ts";
import { newJob, type PreparedSpec } from "./spec.ts";
import type { Batch, BatchCallbacks, EnqueuedBatch, FlowJob, FlowJobSpec, ParentFailureMode } from "./workflow-types.ts";

/** Most jobs one enqueueFlow or enqueueBatch call takes (callbacks included). */
export const MAX_FLOW_JOBS = 20_000;
/** Most edges one call takes. */
export const MAX_FLOW_EDGES = 100_000;

const MODES: readonly EdgeMode[] = ["fail", "cancel", "run"];
/** The edge modes enqueue_flow knows: the public ones, and a batch's failure callback's (runs at the first failure). */
type EdgeMode = ParentFailureMode | "failure";
const BATCH_MODES: readonly EdgeMode[] = [...MODES, "failure"];

type ToSpec = (spec: FlowJobSpec, path: string) => PreparedSpec | Promise<PreparedSpec>;

/** A spec as enqueue_flow takes it: its text and its parents as [index, mode] in the order sent. */
interface Node {
  spec: PreparedSpec;
  parents: [number, string][];
  inBatch: boolean;
}

/**
 * Checks a graph of specs and puts it in an order where every parent comes
 * before its children (enqueue_flow's rule, which makes a cycle impossible to
 * send). Returns the order (positions in `specs`) and each spec's parents as
 * positions with their modes. Throws INVALID_GRAPH or GRAPH_TOO_LARGE and
 * writes nothing.
 */
export function orderGraph(
  specs: readonly FlowJobSpec[],
  modes: readonly EdgeMode[] = MODES,
): { order: number[]; parents: [number, EdgeMode][][] } {
  if (!Array.isArray(specs)) {
    throw new PgPulseError("INVALID_INPUT", "enqueueFlow takes an array of job specs", { details: [{ path: "", message: "not an array" }] });
  }
  if (specs.length > MAX_FLOW_JOBS) {
    throw new PgPulseError("GRAPH_TOO_LARGE", `a flow takes at most ${MAX_FLOW_JOBS} jobs, got ${specs.length}`, {
      details: { jobs: specs.length, maxJobs: MAX_FLOW_JOBS },
    });
  }
  const index = new Map<string, number>();
  for (const [i, spec] of specs.entries()) {
    if (spec === null || typeof spec !== "object") {
      throw new PgPulseError("INVALID_INPUT", `[${i}] is not a job spec object`, { details: [{ path: `[${i}]`, message: "not an object" }] });
    }
    const name = spec.name;
    if (typeof name !== "string" || name === "" || name.length > 128) {
      throw new PgPulseError("INVALID_GRAPH", `[${i}].name must be a string of 1 to 128 characters naming the job within the flow`, {
        details: { reason: "name", path: `[${i}].name` },
      });
    }
    if (index.has(name)) {
      throw new PgPulseError("INVALID_GRAPH", `two jobs of the flow are named "${name}" ([${index.get(name)}] and [${i}])`, {
        details: { reason: "duplicate_name", name },
      });
    }
    index.set(name, i);
  }
  let edges = 0;
  const parents = specs.map((spec, i) => {
    const given = spec.parents ?? [];
    if (!Array.isArray(given)) {
      throw new PgPulseError("INVALID_GRAPH", `[${i}].parents must be an array of names`, { details: { reason: "parents", path: `[${i}].parents` } });
    }
    const fallback: EdgeMode = spec.onParentFailure ?? "fail";
    if (!modes.includes(fallback)) {
      throw new PgPulseError("INVALID_GRAPH", `[${i}].onParentFailure must be fail, cancel or run, got ${JSON.stringify(fallback)}`, {
        details: { reason: "mode", path: `[${i}].onParentFailure` },
      });
    }
    const seen = new Set<number>();
    const out: [number, EdgeMode][] = [];
    for (const [k, p] of given.entries()) {
      const name = typeof p === "string" ? p : p?.name;
      const mode = (typeof p === "string" ? undefined : p?.onFailure) ?? fallback;
      const at = typeof name === "string" ? index.get(name) : undefined;
      if (at === undefined) {
        throw new PgPulseError("INVALID_GRAPH", `[${i}].parents[${k}]: no job named ${JSON.stringify(name)} in this flow`, {
          details: { reason: "unknown_parent", path: `[${i}].parents[${k}]`, name: name ?? null },
        });
      }
      if (at === i) {
        throw new PgPulseError("INVALID_GRAPH", `job "${spec.name}" names itself as a parent`, { details: { reason: "cycle", cycle: [spec.name] } });
      }
      if (!modes.includes(mode)) {
        throw new PgPulseError("INVALID_GRAPH", `[${i}].parents[${k}].onFailure must be fail, cancel or run, got ${JSON.stringify(mode)}`, {
          details: { reason: "mode", path: `[${i}].parents[${k}].onFailure` },
        });
      }
      if (seen.has(at)) continue;
      seen.add(at);
      out.push([at, mode]);
    }
    edges += out.length;
    return out;
  });
  if (edges > MAX_FLOW_EDGES) {
    throw new PgPulseError("GRAPH_TOO_LARGE", `a flow takes at most ${MAX_FLOW_EDGES} edges, got ${edges}`, {
      details: { edges, maxEdges: MAX_FLOW_EDGES },
    });
  }
  // Kahn's algorithm, taking ready jobs in input order.
  const waiting = parents.map((p) => p.length);
  const children: number[][] = specs.map(() => []);
  for (const [i, ps] of parents.entries()) for (const [p] of ps) children[p]!.push(i);
  const order: number[] = [];
  for (let i = 0; i < specs.length; i++) if (waiting[i] === 0) order.push(i);
  for (let k = 0; k < order.length; k++) {
    for (const c of children[order[k]!]!) if (--waiting[c]! === 0) order.push(c);
  }
  if (order.length < specs.length) {
    throw new PgPulseError("INVALID_GRAPH", `the flow has a cycle: ${cycleOf(parents, waiting).map((i) => specs[i]!.name).join(" -> ")}`, {
      details: { reason: "cycle", cycle: cycleOf(parents, waiting).map((i) => specs[i]!.name) },
    });
  }
  return { order, parents };
}

/** A cycle among the jobs Kahn's algorithm could not order (each has a parent among them). */
function cycleOf(parents: [number, EdgeMode][][], waiting: number[]): number[] {
  let at = waiting.findIndex((w) => w > 0);
  const seenAt = new Map<number, number>();
  const path: number[] = [];
  while (!seenAt.has(at)) {
    seenAt.set(at, path.length);
    path.push(at);
    at = parents[at]!.find(([p]) => waiting[p]! > 0)![0];
  }
  // path walks from child to parent: reverse it to read parent -> child
  return [...path.slice(seenAt.get(at)!), at].reverse();
}

/** Prepares and inserts a graph; returns its jobs in input order, with the batch's id when there is one. */
export async function insertFlow(
  db: DbOps,
  specs: readonly FlowJobSpec[],
  toSpec: ToSpec,
  batch: { callbacks: Partial<Record<keyof BatchCallbacks, number>> } | null,
  inBatch: (i: number) => boolean,
  modes: readonly EdgeMode[] = MODES,
): Promise<{ jobs: FlowJob[]; batchId: string | null }> {
  const { order, parents } = orderGraph(specs, modes);
  const prepared: PreparedSpec[] = [];
  for (const [i, spec] of specs.entries()) {
    if (spec.key !== undefined || spec.throttleMs !== undefined || spec.debounceMs !== undefined) {
      throw new PgPulseError("INVALID_INPUT", `[${i}]: keys (key, throttleMs, debounceMs) are not supported in flows and batches`, {
        details: [{ path: `[${i}].key`, message: "not supported in a flow" }],
      });
    }
    const { name: _name, parents: _parents, onParentFailure: _mode, ...rest } = spec;
    const one = toSpec(rest as FlowJobSpec, `[${i}].`);
    prepared.push(one instanceof Promise ? await one : one);
  }
  if (specs.length === 0) return { jobs: [], batchId: null };
  const at = new Array<number>(specs.length);
  for (const [k, i] of order.entries()) at[i] = k;
  const nodes: Node[] = order.map((i) => ({
    spec: prepared[i]!,
    parents: parents[i]!.map(([p, mode]) => [at[p]!, mode]),
    inBatch: inBatch(i),
  }));
  const body = `[${nodes.map((n) => `${n.spec.text.slice(0, -1)},"parents":${JSON.stringify(n.parents)}${n.inBatch ? ',"in_batch":true' : ""}}`).join(",")}]`;
  const batchBody = batch
    ? JSON.stringify({ callbacks: Object.fromEntries(Object.entries(batch.callbacks).map(([k, i]) => [k, at[i!]])) })
    : null;
  const { ids, now, batchId } = await db.flowEnqueue(body, batchBody);
  const jobs = new Array<FlowJob>(specs.length);
  for (const [k, i] of order.entries()) {
    const node = nodes[k]!;
    jobs[i] = { ...newJob(node.spec, ids[k]!, now, node.parents.length > 0 ? "pending" : "queued", node.inBatch ? batchId : null), name: specs[i]!.name };
  }
  return { jobs, batchId };
}

/** Enqueues a batch: its jobs, and callbacks that are children of every one of them. */
export async function insertBatch(
  db: DbOps,
  specs: readonly FlowJobSpec[],
  callbacks: BatchCallbacks,
  toSpec: ToSpec,
): Promise<EnqueuedBatch> {
  if (!Array.isArray(specs) || specs.length === 0) {
    throw new PgPulseError("INVALID_INPUT", "enqueueBatch takes a non-empty array of job specs", { details: [{ path: "", message: "empty or not an array" }] });
  }
  const names = specs.map((_, i) => `#${i}`);
  const all: FlowJobSpec[] = specs.map((s, i) => {
    if (s === null || typeof s !== "object") {
      throw new PgPulseError("INVALID_INPUT", `[${i}] is not a job spec object`, { details: [{ path: `[${i}]`, message: "not an object" }] });
    }
    if ("parents" in s || "name" in s) {
      throw new PgPulseError("INVALID_INPUT", `[${i}]: a batch's jobs take no name or parents (use enqueueFlow for a graph)`, {
        details: [{ path: `[${i}]`, message: "name or parents in a batch" }],
      });
    }
    return { ...s, name: names[i]! };
  });
  const at: Partial<Record<keyof BatchCallbacks, number>> = {};
  const modes = { complete: "run", success: "cancel", failure: "failure" } as const;
  for (const key of ["complete", "success", "failure"] as const) {
    const spec = callbacks[key];
    if (spec === undefined) continue;
    if (spec === null || typeof spec !== "object") {
      throw new PgPulseError("INVALID_INPUT", `callbacks.${key} must be a job spec`, { details: [{ path: `callbacks.${key}`, message: "not an object" }] });
    }
    at[key] = all.length;
    // ("failure" is not a mode a caller may give; BATCH_MODES lets it through for the callback)
    all.push({ ...spec, name: `callbacks.${key}`, parents: names, onParentFailure: modes[key] as ParentFailureMode });
  }
  const { jobs, batchId } = await insertFlow(db, all, toSpec, { callbacks: at }, (i) => i < specs.length, BATCH_MODES);
  // (the names above were the flow's own: a batch's jobs and callbacks come back without them)
  const unnamed = ({ name: _, ...job }: FlowJob): EnqueuedJob => job;
  return {
    id: batchId!,
    jobs: jobs.slice(0, specs.length).map(unnamed),
    callbacks: Object.fromEntries(Object.entries(at).map(([k, i]) => [k, unnamed(jobs[i!]!)])) as EnqueuedBatch["callbacks"],
  };
}

/** A batch as stored, with its jobs counted by status and its state. */
export function batchFromRow(row: NonNullable<Awaited<ReturnType<DbOps["batchGet"]>>>): Batch {
  const counts = { pending: 0, queued: 0, running: 0, completed: 0, failed: 0, cancelled: 0, ...(row.counts ?? {}) };
  // (jobs pruned since had ended: what is left decides)
  const live = counts.pending + counts.queued + counts.running;
  return {
    id: String(row.id),
    size: row.size,
    createdAt: row.created_at,
    counts,
    state: live > 0 ? "running" : counts.failed + counts.cancelled === 0 ? "completed" : "failed",
    callbacks: row.callbacks,
  };
}
