// The API's shared shapes: ids, timestamps, a job's fields as every enqueue takes them,
// counts, the error body, and validate(), which turns a schema's issues into a 400.
import * as v from "valibot";
import { INT4_MAX, int, name, span, storable } from "../../producer/enqueue-options.ts";
import { JOB_STATUSES } from "../../shared/types.ts";
import { ApiError } from "../errors.ts";

export { INT4_MAX };
export const STATUSES = JOB_STATUSES;

/** A calendar date that exists: 2026-02-30 would otherwise roll over to March. */
const realDate = (what: string) =>
  v.check((s: string) => {
    const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(s);
    if (!m) return true; // not a timestamp at all: isoTimestamp says so
    return Number(m[3]) <= new Date(Date.UTC(Number(m[1]), Number(m[2]), 0)).getUTCDate();
  }, `${what} is not a date that exists`);

/** Not past the largest bigint. Checks run even after an earlier one failed, so this must not throw. */
export function fitsBigint(s: string): boolean {
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

/** A job's key (idempotency), as POST /jobs and a schedule's trigger take it. */
export const jobKey = (description: string) =>
  v.pipe(
    v.string("key must be a string"),
    v.minLength(1, "key must not be empty"),
    v.maxLength(512, "key is longer than 512 characters"),
    storable("key"),
    v.description(description),
  );

/** The fields of one job, as POST /jobs, a flow's jobs, a batch's jobs and its callbacks take them. */
export const jobFields = {
  task: v.pipe(name("task"), v.description("Task name the worker runs the job under.")),
  payload: v.optional(v.pipe(v.unknown(), v.description("Any JSON value; `{}` when left out. At most 1 MiB."))),
  queue: v.optional(v.pipe(name("queue"), v.description('Queue name. Default "default".'))),
  priority: v.optional(v.pipe(int("priority", -INT4_MAX, INT4_MAX), v.description("Higher runs first within a queue. Default 0."))),
  runAt: v.optional(v.pipe(timestamp("runAt"), v.description("Not before this time. Give runAt or delayMs, not both."))),
  delayMs: v.optional(v.pipe(span("delayMs"), v.description("Not before this many ms from now (database time); at most 100 years."))),
  maxAttempts: v.optional(v.pipe(int("maxAttempts", 1, 10_000), v.description("Attempts before the job fails for good. Default 10."))),
  timeoutMs: v.optional(v.pipe(int("timeoutMs", 1, INT4_MAX), v.description("Time one attempt may take."))),
};

export const JOB_FIELD_NAMES = "task, payload, queue, priority, runAt, delayMs, maxAttempts and timeoutMs";

/** runAt and delayMs both given: one issue, at delayMs. Follows an object schema whose output has both. */
export function runAtOrDelay<T extends { runAt?: string; delayMs?: number }>(): v.BaseValidation<T, T, v.BaseIssue<unknown>> {
  const check = v.partialCheck(
    [["runAt"], ["delayMs"]],
    (o: { runAt?: string; delayMs?: number }) => o.runAt === undefined || o.delayMs === undefined,
    "give runAt or delayMs, not both",
  );
  return v.forward(check, ["delayMs"]) as unknown as v.BaseValidation<T, T, v.BaseIssue<unknown>>;
}

export const dateTime = v.pipe(v.string(), v.isoTimestamp());
export const nullableDateTime = v.nullable(dateTime);

export const count = v.pipe(v.number(), v.integer(), v.minValue(0));

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
