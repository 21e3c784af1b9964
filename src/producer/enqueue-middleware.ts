import type { SqlHandle } from "../db/connection.ts";
import { PgPulseError } from "../shared/errors.ts";
import { runWith } from "../shared/middleware.ts";
import type { EnqueuedJob } from "../shared/types.ts";
import type { EnqueueCall, JobSpec, QueueMiddleware } from "./types.ts";
import type { BatchCallbacks, EnqueuedBatch } from "./workflow-types.ts";

/**
 * A queue's enqueue middleware (`queue.use`, the `middleware` option): runs a
 * call through it and writes what it leaves. Middleware see copies of the
 * specs; without middleware the caller's array goes straight through, uncopied.
 */
export class EnqueueMiddleware {
  readonly #list: QueueMiddleware[];

  constructor(initial: unknown) {
    this.#list = [...checkMiddleware(initial)];
  }

  add(mw: QueueMiddleware): void {
    if (typeof mw !== "function") throw new PgPulseError("INVALID_INPUT", "use() takes a middleware function (call, next) => ...");
    this.#list.push(mw);
  }

  /** `write` gets the specs as the middleware left them; the jobs come from `write`, whatever middleware return. */
  async run<J extends EnqueuedJob>(
    op: EnqueueCall["op"], specs: readonly JobSpec[], tx: SqlHandle | undefined, write: (specs: JobSpec[]) => Promise<J[]>,
  ): Promise<J[]> {
    if (this.#list.length === 0) return write(specs as JobSpec[]);
    let jobs: J[] | undefined;
    await this.#chain({ op, specs: copies(specs), tx }, () => jobs, async (call) => (jobs = await write(call.specs)));
    if (!jobs) throw notCalled();
    return jobs;
  }

  /** For enqueueBatch: middleware see the batch's jobs then its callbacks as the call's jobs. */
  async runBatch(
    specs: readonly JobSpec[], callbacks: BatchCallbacks, tx: SqlHandle | undefined,
    write: (specs: JobSpec[], callbacks: BatchCallbacks) => Promise<EnqueuedBatch>,
  ): Promise<EnqueuedBatch> {
    if (this.#list.length === 0) return write(specs as JobSpec[], callbacks);
    let batch: EnqueuedBatch | undefined;
    const jobs = () => (batch ? [...batch.jobs, ...Object.values(batch.callbacks)] : undefined);
    const call: EnqueueCall = { op: "enqueueBatch", specs: copies(specs), callbacks: copyCallbacks(callbacks), tx };
    await this.#chain(call, jobs, async (c) => {
      batch = await write(c.specs, c.callbacks ?? {});
      return jobs()!;
    });
    if (!batch) throw notCalled();
    return batch;
  }

  /** Each next() resolves with the jobs written, whatever an inner middleware returns. */
  #chain(call: EnqueueCall, written: () => EnqueuedJob[] | undefined, last: (call: EnqueueCall) => Promise<EnqueuedJob[]>) {
    const list = this.#list.map((mw) => (c: EnqueueCall, next: () => Promise<EnqueuedJob[]>) => mw(c, next).then(() => written()!));
    return runWith(list, call, () => last(call));
  }
}

function notCalled(): PgPulseError {
  return new PgPulseError("INVALID_STATE", "a queue middleware returned without calling next()");
}

function copies(specs: readonly JobSpec[]): JobSpec[] {
  return specs.map((spec) => (spec !== null && typeof spec === "object" ? { ...spec, ...(spec.meta ? { meta: { ...spec.meta } } : {}) } : spec));
}

function copyCallbacks(callbacks: BatchCallbacks): BatchCallbacks {
  return Object.fromEntries(Object.entries(callbacks).map(([k, spec]) => [k, copies([spec as JobSpec])[0]]));
}

function checkMiddleware(list: unknown): QueueMiddleware[] {
  if (list === undefined) return [];
  if (!Array.isArray(list) || list.some((m) => typeof m !== "function")) {
    throw new PgPulseError("INVALID_INPUT", "middleware must be an array of functions (call, next) => ...", {
      details: [{ path: "middleware", message: "not an array of functions" }],
    });
  }
  return list as QueueMiddleware[];
}
