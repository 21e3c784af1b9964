// The API's shapes, in valibot. Request schemas validate input; response
// schemas document output (and tests check responses against them). Both feed
// GET /openapi.json through json-schema.ts, so the docs cannot drift.
import * as v from "valibot";
import { int, name, storable } from "../producer/enqueue-options.ts";
import { MAX_FLOW_EDGES, MAX_FLOW_JOBS } from "../producer/flows.ts";
import { JOB_FILTER_FIELDS, jobFilterWireEntries, jobFilterWireSchema, MAX_PAYLOAD_FILTER_BYTES, parseTime } from "../producer/job-filter.ts";
import type { ListJobsFilter } from "../producer/types.ts";
import { JOB_STATUSES } from "../shared/types.ts";
import { ApiError } from "./errors.ts";
import { guardJson } from "./json-guard.ts";

const INT4_MAX = 2_147_483_647;
const STATUSES = JOB_STATUSES;

/** A calendar date that exists: 2026-02-30 would otherwise roll over to March. */
const realDate = (what: string) =>
  v.check((s: string) => {
    const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(s);
    if (!m) return true; // not a timestamp at all: isoTimestamp says so
    return Number(m[3]) <= new Date(Date.UTC(Number(m[1]), Number(m[2]), 0)).getUTCDate();
  }, `${what} is not a date that exists`);

/** Not past the largest bigint. Checks run even after an earlier one failed, so this must not throw. */
function fitsBigint(s: string): boolean {
  return !/^[0-9]{19}$/.test(s) || BigInt(s) <= 9223372036854775807n;
}

const timestamp = (what: string) =>
  v.pipe(v.string(`${what} must be a string`), v.isoTimestamp(`${what} must be an ISO 8601 timestamp`), realDate(what));

const idSchema = (what: "job" | "batch") =>
  v.pipe(
    v.string(),
    v.regex(/^[1-9][0-9]{0,18}$/, `${what} id must be a positive integer`),
    v.check(fitsBigint, `${what} id is past the largest bigint`),
    v.description(`${what === "job" ? "Job" : "Batch"} id: a Postgres bigint, as a decimal string.`),
  );

export const jobIdSchema = idSchema("job");
export const batchIdSchema = idSchema("batch");

/** The fields of one job, as POST /jobs, a flow's jobs, a batch's jobs and its callbacks take them. */
const jobFields = {
  task: v.pipe(name("task"), v.description("Task name the worker runs the job under.")),
  payload: v.optional(v.pipe(v.unknown(), v.description("Any JSON value; `{}` when left out. At most 1 MiB."))),
  queue: v.optional(v.pipe(name("queue"), v.description('Queue name. Default "default".'))),
  priority: v.optional(v.pipe(int("priority", -INT4_MAX, INT4_MAX), v.description("Higher runs first within a queue. Default 0."))),
  runAt: v.optional(v.pipe(timestamp("runAt"), v.description("Not before this time. Give runAt or delayMs, not both."))),
  delayMs: v.optional(v.pipe(int("delayMs", 0, Number.MAX_SAFE_INTEGER), v.description("Not before this many ms from now (database time)."))),
  maxAttempts: v.optional(v.pipe(int("maxAttempts", 1, 10_000), v.description("Attempts before the job fails for good. Default 10."))),
  timeoutMs: v.optional(v.pipe(int("timeoutMs", 1, INT4_MAX), v.description("Time one attempt may take."))),
};

const JOB_FIELD_NAMES = "task, payload, queue, priority, runAt, delayMs, maxAttempts and timeoutMs";

/** runAt and delayMs both given: one issue, at delayMs. Follows an object schema whose output has both. */
function runAtOrDelay<T extends { runAt?: string; delayMs?: number }>(): v.BaseValidation<T, T, v.BaseIssue<unknown>> {
  const check = v.partialCheck(
    [["runAt"], ["delayMs"]],
    (o: { runAt?: string; delayMs?: number }) => o.runAt === undefined || o.delayMs === undefined,
    "give runAt or delayMs, not both",
  );
  return v.forward(check, ["delayMs"]) as unknown as v.BaseValidation<T, T, v.BaseIssue<unknown>>;
}

const enqueueBody = v.strictObject(
  {
    ...jobFields,
    key: v.optional(
      v.pipe(
        v.string("key must be a string"),
        v.minLength(1, "key must not be empty"),
        v.maxLength(512, "key is longer than 512 characters"),
        storable("key"),
        v.description("Idempotency key: while a job with this key is queued or running, its job is returned (200) instead."),
      ),
    ),
  },
  "unknown field; the fields are task, payload, queue, priority, runAt, delayMs, maxAttempts, timeoutMs and key",
);
export const enqueueBodySchema = v.pipe(enqueueBody, runAtOrDelay<v.InferOutput<typeof enqueueBody>>());

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

const cursorSchema = v.pipe(
  v.string("cursor must be a string"),
  v.regex(/^[1-9][0-9]{0,18}$/, "cursor must be the nextCursor of a previous page"),
  v.check(fitsBigint, "cursor must be the nextCursor of a previous page"),
  v.description("The nextCursor of the previous page."),
);

type Ranged = { createdFrom?: string; createdTo?: string; finishedFrom?: string; finishedTo?: string };

/** A range whose start is not before its end, refused at its end (as the library's filter does). */
function ordered(from: "createdFrom" | "finishedFrom", to: "createdTo" | "finishedTo") {
  return v.forward(
    v.partialCheck([[from], [to]], (o: Ranged) => o[from] === undefined || o[to] === undefined || parseTime(o[from]) < parseTime(o[to]), `${from} must be before ${to}`),
    [to],
  ) as unknown as v.BaseValidation<Ranged, Ranged, v.BaseIssue<unknown>>;
}

const FILTER_NAMES = JOB_FILTER_FIELDS.join(", ");

const listJobsQueryObject = v.strictObject(
  {
    ...jobFilterWireEntries,
    payload: v.optional(
      v.pipe(
        v.string("payload must be JSON text"),
        v.maxLength(MAX_PAYLOAD_FILTER_BYTES, `payload is longer than ${MAX_PAYLOAD_FILTER_BYTES} characters`),
        v.description('JSON the payload must contain (Postgres\'s @>), URL-encoded: payload={"user":42}.'),
      ),
    ),
    limit: v.optional(v.pipe(int("limit", 1, 500), v.description("Page size. Default 50."))),
    cursor: v.optional(cursorSchema),
  },
  `unknown parameter; the parameters are ${FILTER_NAMES}, limit and cursor`,
);

/** Query of GET /jobs, after numeric parameters were read as numbers: the job filter (its payload as JSON text), and a page. */
export const listJobsQuerySchema = v.pipe(listJobsQueryObject, ordered("createdFrom", "createdTo"), ordered("finishedFrom", "finishedTo"));

/** Reads GET /jobs's query (or the dashboard's filter form) into a ListJobsFilter; 400 for anything wrong, payload JSON included. */
export function parseJobListQuery(input: Record<string, unknown>, what: string): ListJobsFilter {
  const { payload, ...rest } = validate(listJobsQuerySchema, input, what) as v.InferOutput<typeof listJobsQueryObject>;
  if (payload === undefined) return rest;
  let value: unknown;
  try {
    value = JSON.parse(payload);
  } catch (error) {
    const message = `is not valid JSON: ${(error as Error).message}`;
    throw new ApiError(400, "INVALID_INPUT", `invalid ${what}: payload: ${message}`, [{ path: "payload", message }]);
  }
  try {
    guardJson({ payload: value });
  } catch (error) {
    // what Postgres could not store, with the path to it: a filter's fault, not a job's payload's
    if (!(error instanceof ApiError)) throw error;
    throw new ApiError(400, "INVALID_INPUT", `invalid ${what}: ${error.message}`, error.details);
  }
  return { ...rest, payload: validate(v.object({ payload: jobFilterWireEntries.payload }), { payload: value }, what).payload };
}

const bulkFields = {
  filter: v.pipe(
    jobFilterWireSchema,
    v.description(`Which jobs: every field given must match (${FILTER_NAMES}). {} for every job the operation applies to.`),
  ),
  batchSize: v.optional(v.pipe(int("batchSize", 1, 10_000), v.description("Rows one batch (one transaction) changes. Default 1000."))),
  dryRun: v.optional(v.pipe(v.boolean("dryRun must be true or false"), v.description("Change nothing: count what would be found, changed and skipped."))),
};

/** Body of POST /jobs/retry and POST /jobs/cancel. */
export const bulkBodySchema = v.strictObject(bulkFields, "unknown field; the fields are filter, batchSize and dryRun");

/** Body of POST /jobs/delete. */
export const deleteBodySchema = v.strictObject(
  {
    ...bulkFields,
    all: v.optional(
      v.pipe(v.boolean("all must be true or false"), v.description("Delete every finished job: needed when the filter names none (else 400 EMPTY_FILTER).")),
    ),
  },
  "unknown field; the fields are filter, all, batchSize and dryRun",
);

/** Query of GET /jobs/:id/graph. */
export const graphQuerySchema = v.strictObject(
  { limit: v.optional(v.pipe(int("limit", 1, 10_000), v.description("Most jobs to return. Default 200."))) },
  "unknown parameter; the parameter is limit",
);

const seq = (what: string, description: string) => v.pipe(int(what, 0, INT4_MAX), v.description(description));

/** Query of GET /jobs/:id/logs. */
export const logsQuerySchema = v.strictObject(
  {
    after: v.optional(seq("after", "Lines after this seq: the nextAfter of the previous page. Default 0, from the first line.")),
    limit: v.optional(v.pipe(int("limit", 1, 1000), v.description("Page size. Default 100."))),
  },
  "unknown parameter; the parameters are after and limit",
);

/** Query of GET /jobs/:id/events. */
export const eventsQuerySchema = v.strictObject(
  { after: v.optional(seq("after", "Send only the log lines after this seq. A Last-Event-ID header (sent by a reconnecting client) wins.")) },
  "unknown parameter; the parameter is after",
);

/** The Last-Event-ID header of a reconnecting event stream: the seq of the last log line received. */
export const lastEventIdSchema = v.pipe(
  v.string(),
  v.regex(/^(0|[1-9][0-9]{0,9})$/, "Last-Event-ID must be the id of a log event"),
  v.transform(Number),
  v.maxValue(INT4_MAX, "Last-Event-ID must be the id of a log event"),
);

const dateTime = v.pipe(v.string(), v.isoTimestamp());
const nullableDateTime = v.nullable(dateTime);

export const jobErrorSchema = v.object({
  attempt: v.pipe(v.number(), v.integer()),
  at: dateTime,
  name: v.string(),
  message: v.string(),
  stack: v.optional(v.string()),
  worker: v.optional(v.nullable(v.string())),
  unstarted: v.optional(v.pipe(v.boolean(), v.description("The worker died holding the job, claimed ahead, before starting it."))),
  parent: v.optional(v.pipe(v.string(), v.description("For ParentFailed and ParentCancelled: the parent whose end ended this job."))),
});

const jobEntries = {
  id: v.string(),
  queue: v.string(),
  task: v.string(),
  payload: v.unknown(),
  status: v.picklist(STATUSES),
  priority: v.pipe(v.number(), v.integer()),
  runAt: dateTime,
  attempts: v.pipe(v.number(), v.integer()),
  maxAttempts: v.pipe(v.number(), v.integer()),
  timeoutMs: v.nullable(v.pipe(v.number(), v.integer())),
  key: v.nullable(v.string()),
  progress: v.pipe(v.number(), v.minValue(0), v.maxValue(100)),
  result: v.unknown(),
  errors: v.pipe(v.array(jobErrorSchema), v.description("One entry per failed attempt, oldest first.")),
  workerId: v.nullable(v.string()),
  cancelRequestedAt: nullableDateTime,
  createdAt: dateTime,
  startedAt: nullableDateTime,
  finishedAt: nullableDateTime,
  batchId: v.pipe(v.nullable(v.string()), v.description("The batch the job belongs to (POST /batches), or null.")),
};

export const jobSchema = v.object(jobEntries);
export const enqueuedJobSchema = v.object({
  ...jobEntries,
  deduplicated: v.pipe(v.boolean(), v.description("True when a live job with the same key was returned instead of a new one.")),
});
export const jobListSchema = v.object({ jobs: v.array(jobSchema), nextCursor: v.nullable(v.string()) });

const count = v.pipe(v.number(), v.integer(), v.minValue(0));

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

export const logLineSchema = v.object({
  seq: v.pipe(count, v.description("The line's place among the job's lines, from 1.")),
  attempt: v.pipe(v.number(), v.integer()),
  at: dateTime,
  level: v.pipe(
    v.picklist(["debug", "info", "warn", "error", "dropped"]),
    v.description("dropped: a line counting the lines past the job's caps (fields.dropped)."),
  ),
  message: v.string(),
  fields: v.nullable(v.record(v.string(), v.unknown())),
});
export const logListSchema = v.object({
  logs: v.array(logLineSchema),
  nextAfter: v.pipe(v.nullable(count), v.description("Pass as after for the next page; null when this page was the last (so far).")),
});

/** The data of an event stream's last event. */
export const eventEndSchema = v.object({
  id: v.string(),
  status: v.pipe(
    v.nullable(v.picklist(["completed", "failed", "cancelled"])),
    v.description("The job's final status; null when the job was deleted before it ended."),
  ),
});

/** A limit: a whole number from 1, or null for none. */
const limit = (what: string, description: string) => v.nullable(v.pipe(int(what, 1, INT4_MAX), v.description(description)));
const rateLimitSchema = v.strictObject(
  {
    max: v.pipe(int("rateLimit.max", 1, INT4_MAX), v.description("Most job starts in any window of intervalMs.")),
    intervalMs: v.pipe(int("rateLimit.intervalMs", 1, INT4_MAX), v.description("The window, in ms.")),
  },
  "unknown field; a rate limit is { max, intervalMs }",
);

const queueConfigEntries = {
  paused: v.pipe(v.boolean(), v.description("A paused queue starts no new jobs; running ones finish.")),
  concurrency: v.pipe(v.nullable(count), v.description("Most jobs of the queue running at once, across all workers; null for no limit.")),
  groupConcurrency: v.pipe(v.nullable(count), v.description("Most jobs of one group running at once; null for no limit.")),
  rateLimit: v.pipe(v.nullable(v.object({ max: count, intervalMs: count })), v.description("At most max starts in any intervalMs; null for no limit.")),
};

export const queueConfigSchema = v.object({ queue: v.string(), ...queueConfigEntries });

export const bulkResultSchema = v.object({
  matched: v.pipe(count, v.description("Jobs the filter matched in a state the operation applies to (retry: failed, cancelled; cancel: pending, queued, running; delete: completed, failed, cancelled).")),
  changed: v.pipe(count, v.description("Jobs retried, cancelled (running ones: asked to stop) or deleted; with dryRun, those it would.")),
  skipped: v.pipe(count, v.description("Matched but left as they were: the sum of reasons.")),
  reasons: v.object({
    key: v.pipe(count, v.description("retry: another live job holds the job's key.")),
    parent: v.pipe(count, v.description("retry: a parent stands failed or cancelled, or its failure ended the job; retry the parent.")),
    children: v.pipe(count, v.description("delete: a child of the job has not completed (it reads the job's result when it runs, and may be retried).")),
    busy: v.pipe(count, v.description("Another transaction held the job each time the operation came to it.")),
  }),
  stopping: v.pipe(count, v.description("cancel: running jobs asked to stop (in changed); each ends as cancelled when its handler stops.")),
  batches: v.pipe(count, v.description("Batches run, each its own transaction.")),
  dryRun: v.boolean(),
});

const queueSummarySchema = v.object({
  queue: v.string(),
  pending: v.pipe(count, v.description("Jobs of a flow or batch waiting for their parents.")),
  waiting: v.pipe(count, v.description("Queued jobs runnable now.")),
  scheduled: v.pipe(count, v.description("Queued jobs to run later (delayed, or waiting out a retry's backoff).")),
  running: count,
  completed: count,
  failed: count,
  cancelled: count,
  oldestWaitingMs: v.nullable(count),
  finishedLastMinute: count,
  ...queueConfigEntries,
});
export const queueSchema = queueSummarySchema;
export const queueListSchema = v.object({ queues: v.array(queueSummarySchema) });

/** A queue named in a path. */
export const queueNameSchema = v.pipe(name("queue"), v.description("Queue name (URL-encoded in the path)."));

/** PATCH /queues/{name}: the limits to change; a limit left out keeps its value, null lifts it. */
export const queueLimitsBodySchema = v.strictObject(
  {
    concurrency: v.optional(limit("concurrency", "Most jobs of the queue running at once, across all workers; null lifts the limit.")),
    groupConcurrency: v.optional(limit("groupConcurrency", "Most jobs of one group (the group enqueue option) running at once; null lifts the limit.")),
    rateLimit: v.optional(v.pipe(v.nullable(rateLimitSchema), v.description("At most max starts in any intervalMs, across all workers; null lifts the limit."))),
  },
  "unknown field; the limits are concurrency, groupConcurrency and rateLimit",
);

/** POST /prune: how long finished jobs are kept. */
export const pruneBodySchema = v.strictObject(
  {
    completedMs: v.optional(v.pipe(int("completedMs", 0, Number.MAX_SAFE_INTEGER), v.description("Completed jobs that finished longer ago than this are deleted. Default one day."))),
    failedMs: v.optional(v.pipe(int("failedMs", 0, Number.MAX_SAFE_INTEGER), v.description("Failed and cancelled jobs that finished longer ago than this are deleted. Default 14 days."))),
  },
  "unknown field; the fields are completedMs and failedMs",
);
export const pruneResultSchema = v.object({ deleted: v.pipe(count, v.description("Jobs deleted.")) });

/** A schedule named in a path. */
export const scheduleNameSchema = v.pipe(name("name"), v.description("Schedule name (URL-encoded in the path)."));

/** PUT /schedules/{name}: the schedule's definition (its name is the path's). */
export const scheduleBodySchema = v.strictObject(
  {
    cron: v.pipe(v.string("cron must be a string"), v.minLength(1, "cron must not be empty"), v.maxLength(256, "cron is longer than 256 characters"),
      storable("cron"), v.description('Five fields, or six with seconds first: "0 3 * * *".')),
    task: v.pipe(name("task"), v.description("Task of the jobs it makes.")),
    payload: v.optional(v.pipe(v.unknown(), v.description("Payload of the jobs it makes; `{}` when left out."))),
    timezone: v.optional(v.pipe(v.nullable(v.pipe(v.string("timezone must be a string"), v.minLength(1, "timezone must not be empty"), v.maxLength(64), storable("timezone"))),
      v.description("IANA time zone the cron is read in; UTC when left out or null."))),
    queue: v.optional(v.pipe(v.nullable(name("queue")), v.description('Queue of the jobs; "default" when left out or null.'))),
    priority: v.optional(v.nullable(int("priority", -INT4_MAX, INT4_MAX))),
    maxAttempts: v.optional(v.nullable(int("maxAttempts", 1, 10_000))),
    timeoutMs: v.optional(v.nullable(int("timeoutMs", 1, INT4_MAX))),
    catchUp: v.optional(v.pipe(int("catchUp", 1, 1000), v.description("After downtime, at most this many jobs for the missed ticks (the latest). Default 1."))),
  },
  "unknown field; the fields are cron, task, payload, timezone, queue, priority, maxAttempts, timeoutMs and catchUp",
);

export const scheduleSchema = v.object({
  name: v.string(),
  cron: v.string(),
  timezone: v.nullable(v.string()),
  task: v.string(),
  payload: v.unknown(),
  queue: v.nullable(v.string()),
  priority: v.nullable(v.pipe(v.number(), v.integer())),
  maxAttempts: v.nullable(v.pipe(v.number(), v.integer())),
  timeoutMs: v.nullable(v.pipe(v.number(), v.integer())),
  catchUp: v.pipe(v.number(), v.integer()),
  lastTick: v.pipe(nullableDateTime, v.description("The latest tick a job was made for.")),
  nextTick: v.pipe(nullableDateTime, v.description("The next tick due; null when the cron has no more.")),
});
export const scheduleListSchema = v.object({ schedules: v.array(scheduleSchema) });

/** POST /schedules/{name}/trigger. */
export const triggerBodySchema = v.strictObject(
  {
    key: v.optional(
      v.pipe(
        v.string("key must be a string"),
        v.minLength(1, "key must not be empty"),
        v.maxLength(512, "key is longer than 512 characters"),
        storable("key"),
        v.description("Idempotency key: while a job with this key is queued or running, it is returned (200) instead. Default schedule:<name>:manual:<time>."),
      ),
    ),
  },
  "unknown field; the only field is key",
);

/** Query of GET /stats, after numeric parameters were read as numbers. */
export const statsQuerySchema = v.strictObject(
  {
    queue: v.optional(v.pipe(name("queue"), v.description("One queue's figures; every queue's with some in the window by default."))),
    minutes: v.optional(v.pipe(int("minutes", 1, 1440), v.description("Minutes, ending with the current one. Default 60."))),
  },
  "unknown parameter; the parameters are queue and minutes",
);

const statsPointSchema = v.object({
  at: v.pipe(dateTime, v.description("The minute's start.")),
  completed: v.pipe(count, v.description("Attempts workers ended with the job completed.")),
  failed: v.pipe(count, v.description("Attempts that failed the job for good.")),
  retried: v.pipe(count, v.description("Attempts that failed and will be retried.")),
  started: v.pipe(count, v.description("Attempts started.")),
  waitMsAvg: v.pipe(v.nullable(v.number()), v.description("Average started_at - run_at of those starts, ms; null without starts.")),
  waitMsMax: v.pipe(v.nullable(v.number()), v.description("Largest started_at - run_at of those starts, ms.")),
  waiting: v.pipe(v.nullable(count), v.description("Jobs runnable then (sampled once a minute); null when nobody sampled.")),
  running: v.pipe(v.nullable(count), v.description("Jobs running then (sampled once a minute); null when nobody sampled.")),
});
export const statsSchema = v.object({
  from: v.pipe(dateTime, v.description("The first minute's start.")),
  to: v.pipe(dateTime, v.description("The end of the current (last) minute.")),
  queues: v.array(v.object({ queue: v.string(), points: v.pipe(v.array(statsPointSchema), v.description("One per minute, oldest first.")) })),
});

const workerSummarySchema = v.object({
  id: v.string(),
  queues: v.array(v.string()),
  tasks: v.array(v.string()),
  concurrency: count,
  running: count,
  meta: v.record(v.string(), v.unknown()),
  startedAt: dateTime,
  heartbeatAt: dateTime,
  heartbeatAgeMs: count,
});
export const workerListSchema = v.object({ workers: v.array(workerSummarySchema) });

export const healthSchema = v.object({
  ok: v.boolean(),
  database: v.object({ ok: v.boolean(), latencyMs: v.nullable(v.number()), error: v.optional(v.string()) }),
  listener: v.object({
    state: v.pipe(v.picklist(["up", "down", "unknown", "none"]), v.description("LISTEN state of the workers given to createApi; none without any.")),
    workers: v.record(v.string(), v.picklist(["up", "down", "unknown", "stopped"])),
  }),
});

export const errorSchema = v.object({
  error: v.object({
    code: v.string(),
    message: v.string(),
    details: v.pipe(v.unknown(), v.description("For invalid input, [{ path, message }]; for a conflict, { status, job }; else null.")),
  }),
});

/**
 * Refuses a JSON body that is not an object: valibot's object schemas take an
 * array as an object (with no keys), which would read `[]` as `{}`.
 */
export function objectBody(input: unknown, what: string): unknown {
  if (input !== undefined && (input === null || typeof input !== "object" || Array.isArray(input))) {
    throw new ApiError(400, "INVALID_INPUT", `invalid ${what}: the body must be a JSON object`, [{ path: "", message: "not a JSON object" }]);
  }
  return input;
}

/** An issue's field path as the API gives them: `jobs[2].parents[0].name`, `callbacks.failure.task`. */
function issuePath(issue: v.BaseIssue<unknown>): string {
  let path = "";
  for (const item of issue.path ?? []) {
    const key = item.key as string | number;
    path += item.type === "array" ? `[${key}]` : path === "" ? String(key) : `.${key}`;
  }
  return path;
}

/** Most issues one 400 lists (a flow of thousands of bad jobs would list them all). */
export const MAX_ISSUES = 100;

/** Parses input with a schema, or throws a 400 listing every issue (up to MAX_ISSUES) with its field path. */
export function validate<S extends v.GenericSchema>(schema: S, input: unknown, what: string): v.InferOutput<S> {
  const result = v.safeParse(schema, input);
  if (result.success) return result.output;
  const issues = result.issues.slice(0, MAX_ISSUES).map((issue) => ({ path: issuePath(issue), message: issue.message }));
  const list = issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join("; ");
  const more = result.issues.length - issues.length;
  throw new ApiError(400, "INVALID_INPUT", `invalid ${what}: ${list}${more > 0 ? `; and ${more} more` : ""}`, issues);
}
