// The API's shapes, in valibot. Request schemas validate input; response
// schemas document output (and tests check responses against them). Both feed
// GET /openapi.json through json-schema.ts, so the docs cannot drift.
import * as v from "valibot";
import { int, name, storable, toIssues } from "../producer/enqueue-options.ts";
import { JOB_STATUSES } from "../shared/types.ts";
import { ApiError } from "./errors.ts";

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

export const jobIdSchema = v.pipe(
  v.string(),
  v.regex(/^[1-9][0-9]{0,18}$/, "job id must be a positive integer"),
  v.check(fitsBigint, "job id is past the largest bigint"),
  v.description("Job id: a Postgres bigint, as a decimal string."),
);

export const enqueueBodySchema = v.pipe(
  v.strictObject(
    {
      task: v.pipe(name("task"), v.description("Task name the worker runs the job under.")),
      payload: v.optional(v.pipe(v.unknown(), v.description("Any JSON value; `{}` when left out. At most 1 MiB."))),
      queue: v.optional(v.pipe(name("queue"), v.description('Queue name. Default "default".'))),
      priority: v.optional(v.pipe(int("priority", -INT4_MAX, INT4_MAX), v.description("Higher runs first within a queue. Default 0."))),
      runAt: v.optional(v.pipe(timestamp("runAt"), v.description("Not before this time. Give runAt or delayMs, not both."))),
      delayMs: v.optional(v.pipe(int("delayMs", 0, Number.MAX_SAFE_INTEGER), v.description("Not before this many ms from now (database time)."))),
      maxAttempts: v.optional(v.pipe(int("maxAttempts", 1, 10_000), v.description("Attempts before the job fails for good. Default 10."))),
      timeoutMs: v.optional(v.pipe(int("timeoutMs", 1, INT4_MAX), v.description("Time one attempt may take."))),
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
  ),
  v.forward(
    v.partialCheck([["runAt"], ["delayMs"]], (o) => o.runAt === undefined || o.delayMs === undefined, "give runAt or delayMs, not both"),
    ["delayMs"],
  ),
);

/** Query of GET /jobs, after numeric parameters were read as numbers. */
export const listJobsQuerySchema = v.strictObject(
  {
    status: v.optional(v.picklist(STATUSES, `status must be one of ${STATUSES.join(", ")}`)),
    queue: v.optional(name("queue")),
    task: v.optional(name("task")),
    limit: v.optional(v.pipe(int("limit", 1, 500), v.description("Page size. Default 50."))),
    cursor: v.optional(
      v.pipe(
        v.string("cursor must be a string"),
        v.regex(/^[1-9][0-9]{0,18}$/, "cursor must be the nextCursor of a previous page"),
        v.check(fitsBigint, "cursor must be the nextCursor of a previous page"),
        v.description("The nextCursor of the previous page."),
      ),
    ),
  },
  "unknown parameter; the parameters are status, queue, task, limit and cursor",
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
const queueSummarySchema = v.object({
  queue: v.string(),
  pending: v.pipe(count, v.description("Jobs of a flow or batch waiting for their parents.")),
  waiting: count,
  scheduled: count,
  running: count,
  completed: count,
  failed: count,
  cancelled: count,
  oldestWaitingMs: v.nullable(count),
  finishedLastMinute: count,
});
export const queueListSchema = v.object({ queues: v.array(queueSummarySchema) });

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

/** Parses input with a schema, or throws a 400 listing every issue with its field path. */
export function validate<S extends v.GenericSchema>(schema: S, input: unknown, what: string): v.InferOutput<S> {
  const result = v.safeParse(schema, input);
  if (result.success) return result.output;
  const issues = toIssues(result.issues);
  const list = issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join("; ");
  throw new ApiError(400, "INVALID_INPUT", `invalid ${what}: ${list}`, issues);
}
