// The API's shapes for workflows and batches: flows of jobs with parents, batches with
// callbacks, and a job's graph.
import * as v from "valibot";
import { int, name } from "../../producer/enqueue-options.ts";
import { MAX_FLOW_EDGES, MAX_FLOW_JOBS } from "../../producer/flows.ts";
import { JOB_FIELD_NAMES, STATUSES, count, dateTime, jobFields, nullableDateTime, runAtOrDelay } from "./common.ts";
import { enqueuedJobSchema } from "./jobs.ts";

const FAILURE_MODES = ["fail", "cancel", "run"] as const;
const failureMode = (what: string) => v.picklist(FAILURE_MODES, `${what} must be fail, cancel or run`);

/** One job of a flow: a job with a name, and the names of the jobs it waits for. */
const flowJobSpec = v.strictObject(
  {
    name: v.pipe(name("name"), v.description("Names the job within the flow, for its children's parents.")),
    ...jobFields,
    parents: v.optional(
      v.pipe(
        v.array(
          v.union(
            [
              name("parent"),
              v.strictObject(
                { name: name("parent name"), onFailure: v.optional(failureMode("onFailure")) },
                "unknown field; a parent takes name and onFailure",
              ),
            ],
            "a parent is a job's name, or { name, onFailure }",
          ),
          "parents must be an array",
        ),
        v.description("Names of jobs of the same flow this one waits for; { name, onFailure } sets that edge's failure mode."),
      ),
    ),
    onParentFailure: v.optional(
      v.pipe(failureMode("onParentFailure"), v.description("What a parent's failure or cancellation does to this job: fail it (default), cancel it, or run it anyway.")),
    ),
  },
  `unknown field; the fields are name, parents, onParentFailure, ${JOB_FIELD_NAMES} (keys are not taken in flows)`,
);
export const flowJobSpecSchema = v.pipe(flowJobSpec, runAtOrDelay<v.InferOutput<typeof flowJobSpec>>());

/** A job of a batch, or a batch's callback: a job without a key. */
const batchJobSpec = v.strictObject(jobFields, `unknown field; the fields are ${JOB_FIELD_NAMES} (keys are not taken in batches)`);
export const batchJobSpecSchema = v.pipe(batchJobSpec, runAtOrDelay<v.InferOutput<typeof batchJobSpec>>());

const jobArray = <S extends v.GenericSchema>(item: S, description: string) =>
  v.pipe(v.array(item, "jobs must be an array"), v.minLength(1, "jobs must not be empty"), v.description(description));

export const flowBodySchema = v.strictObject(
  { jobs: jobArray(flowJobSpecSchema, `The flow's jobs; parents name jobs of this list. At most ${MAX_FLOW_JOBS} jobs and ${MAX_FLOW_EDGES} edges (else 413).`) },
  "unknown field; the body is { jobs }",
);

export const batchBodySchema = v.strictObject(
  {
    jobs: jobArray(batchJobSpecSchema, `The batch's jobs. At most ${MAX_FLOW_JOBS}, callbacks included (else 413).`),
    callbacks: v.optional(
      v.pipe(
        v.strictObject(
          {
            complete: v.optional(v.pipe(batchJobSpecSchema, v.description("Runs once every job has ended, whatever its status."))),
            success: v.optional(v.pipe(batchJobSpecSchema, v.description("Runs once every job completed; cancelled at the first failure or cancellation."))),
            failure: v.optional(v.pipe(batchJobSpecSchema, v.description("Runs at the first job that fails or is cancelled; cancelled when every job completed."))),
          },
          "unknown callback; the callbacks are complete, success and failure",
        ),
        v.description("Jobs that run when the batch's jobs end."),
      ),
    ),
  },
  "unknown field; the body is { jobs, callbacks }",
);

/** Query of GET /jobs/:id/graph. */
export const graphQuerySchema = v.strictObject(
  { limit: v.optional(v.pipe(int("limit", 1, 10_000), v.description("Most jobs to return. Default 200."))) },
  "unknown parameter; the parameter is limit",
);

export const flowJobSchema = v.object({ ...enqueuedJobSchema.entries, name: v.pipe(v.string(), v.description("The job's name in the flow.")) });
export const enqueuedFlowSchema = v.object({ jobs: v.pipe(v.array(flowJobSchema), v.description("The flow's jobs, in the order given.")) });

export const enqueuedBatchSchema = v.object({
  id: v.pipe(v.string(), v.description("The batch's id, for GET /batches/{id}.")),
  jobs: v.pipe(v.array(enqueuedJobSchema), v.description("The batch's jobs, in the order given.")),
  callbacks: v.object({ complete: v.optional(enqueuedJobSchema), success: v.optional(enqueuedJobSchema), failure: v.optional(enqueuedJobSchema) }),
});

export const batchSchema = v.object({
  id: v.string(),
  size: v.pipe(count, v.description("Jobs in the batch, callbacks not included.")),
  createdAt: dateTime,
  counts: v.pipe(
    v.object({ pending: count, queued: count, running: count, completed: count, failed: count, cancelled: count }),
    v.description("The batch's jobs (callbacks not included) by status."),
  ),
  state: v.pipe(
    v.picklist(["running", "completed", "failed"]),
    v.description("running until every job has ended; then completed when all completed, else failed."),
  ),
  callbacks: v.pipe(
    v.object({ complete: v.optional(v.string()), success: v.optional(v.string()), failure: v.optional(v.string()) }),
    v.description("The callbacks' job ids."),
  ),
});

export const graphSchema = v.object({
  nodes: v.array(
    v.object({
      id: v.string(),
      task: v.string(),
      queue: v.string(),
      status: v.picklist(STATUSES),
      progress: v.pipe(v.number(), v.minValue(0), v.maxValue(100)),
      startedAt: nullableDateTime,
      finishedAt: nullableDateTime,
    }),
  ),
  edges: v.array(
    v.object({
      parent: v.string(),
      child: v.string(),
      mode: v.pipe(v.string(), v.description("What the parent's failure does to the child: fail, cancel or run (failure for a batch's failure callback).")),
      state: v.pipe(
        v.picklist(["waiting", "settled", "blocked"]),
        v.description("waiting for the parent to end; settled once it did and the child may go on; blocked when its end ended the child."),
      ),
    }),
  ),
  truncated: v.pipe(v.boolean(), v.description("More jobs are connected than the limit asked for.")),
});
