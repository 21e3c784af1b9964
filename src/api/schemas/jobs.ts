// The API's shapes for jobs: enqueue, list and filter, bulk operations, a job and its
// errors, log lines and event streams.
import * as v from "valibot";
import { int } from "../../producer/enqueue-options.ts";
import { JOB_FILTER_FIELDS, jobFilterWireEntries, jobFilterWireSchema, MAX_PAYLOAD_FILTER_BYTES, parseTime } from "../../producer/job-filter.ts";
import type { ListJobsFilter } from "../../producer/bulk-types.ts";
import { ApiError } from "../errors.ts";
import { guardJson } from "../json-guard.ts";
import { INT4_MAX, STATUSES, count, dateTime, fitsBigint, jobFields, jobKey, nullableDateTime, runAtOrDelay, validate } from "./common.ts";

const enqueueBody = v.strictObject(
  {
    ...jobFields,
    key: v.optional(jobKey("Idempotency key: while a job with this key is queued or running, its job is returned (200) instead.")),
  },
  "unknown field; the fields are task, payload, queue, priority, runAt, delayMs, maxAttempts, timeoutMs and key",
);
export const enqueueBodySchema = v.pipe(enqueueBody, runAtOrDelay<v.InferOutput<typeof enqueueBody>>());

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
  meta: v.pipe(v.nullable(v.record(v.string(), v.string())), v.description("String pairs stored with the job by the library's `meta` option (a trace context, a request id), or null.")),
};

export const jobSchema = v.object(jobEntries);
export const enqueuedJobSchema = v.object({
  ...jobEntries,
  deduplicated: v.pipe(v.boolean(), v.description("True when a live job with the same key was returned instead of a new one.")),
});
export const jobListSchema = v.object({ jobs: v.array(jobSchema), nextCursor: v.nullable(v.string()) });

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

export const bulkResultSchema = v.object({
  matched: v.pipe(count, v.description("Jobs the filter matched in a state the operation applies to (retry: failed, cancelled; cancel: pending, queued, running; delete: completed, failed, cancelled).")),
  changed: v.pipe(count, v.description("Jobs retried, cancelled (running ones: asked to stop) or deleted; with dryRun, those it would.")),
  skipped: v.pipe(count, v.description("Matched but left as they were: the sum of reasons.")),
  reasons: v.object({
    key: v.pipe(count, v.description("retry: another live job holds the job's key.")),
    parent: v.pipe(count, v.description("retry: a parent stands failed or cancelled, or its failure ended the job; retry the parent.")),
    children: v.pipe(count, v.description("delete: a child of the job has not completed (it reads the job's result when it runs, and may be retried).")),
    batch: v.pipe(count, v.description("delete: the job is of a batch, whose jobs are deleted together or not at all, and another job of it is not finished, not matched, or has a child that has not completed.")),
    busy: v.pipe(count, v.description("Another transaction held the job (for a delete, or another job of its batch) each time the operation came to it.")),
  }),
  stopping: v.pipe(count, v.description("cancel: running jobs asked to stop (in changed); each ends as cancelled when its handler stops.")),
  batches: v.pipe(count, v.description("Batches run, each its own transaction.")),
  dryRun: v.boolean(),
});
