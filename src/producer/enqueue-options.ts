import * as v from "valibot";
import { type InputIssue, PgPulseError } from "../shared/errors.ts";
import { MAX_SPAN_MS } from "../shared/defaults.ts";
import { unstorable } from "../shared/json.ts";

export const INT4_MAX = 2_147_483_647;

export const storable = (what: string) => v.check((s: string) => unstorable(s) === null, (issue) => `${what} ${unstorable(issue.input as string)}`);

/** A queue, task or similar name: 1 to 128 characters Postgres can store. */
export const name = (what: string) =>
  v.pipe(
    v.string(`${what} must be a string`),
    v.minLength(1, `${what} must not be empty`),
    v.maxLength(128, `${what} is longer than 128 characters`),
    storable(what),
  );

/**
 * An ISO 8601 date-time string whose fields name a real moment: "2026-02-30T00:00:00Z"
 * is refused, not rolled over into March.
 */
const isoDateTime = v.pipe(
  v.string(),
  v.regex(/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/, "runAt must be an ISO 8601 date-time"),
  v.check((s) => {
    const [y, m, d] = s.slice(0, 10).split("-").map(Number);
    const probe = new Date(Date.UTC(y!, m! - 1, d!));
    return probe.getUTCFullYear() === y && probe.getUTCMonth() === m! - 1 && probe.getUTCDate() === d;
  }, "runAt names a day that does not exist"),
);

/** A whole number from min to max. */
export const int = (what: string, min: number, max: number) =>
  v.pipe(
    v.number(`${what} must be a number`),
    v.integer(`${what} must be an integer`),
    v.minValue(min, `${what} must be at least ${min}`),
    v.maxValue(max, `${what} must be at most ${max}`),
  );

/** A span of time in whole ms, from 0 to 100 years (a delay, a retention). */
export const span = (what: string) =>
  v.pipe(
    v.number(`${what} must be a number`),
    v.integer(`${what} must be an integer`),
    v.minValue(0, `${what} must be at least 0`),
    v.maxValue(MAX_SPAN_MS, `${what} must be at most 100 years (${MAX_SPAN_MS} ms)`),
  );

export const taskNameSchema = name("task");

/** Options for one enqueued job. Unknown keys are rejected. */
export const enqueueOptionsSchema = v.pipe(
  v.strictObject(
    {
      queue: v.optional(name("queue")),
      priority: v.optional(int("priority", -INT4_MAX, INT4_MAX)),
      runAt: v.optional(
        v.pipe(
          v.union([v.date(), isoDateTime], "runAt must be a Date or an ISO 8601 string"),
          v.transform((x) => (x instanceof Date ? x : new Date(x))),
          v.check((d) => !Number.isNaN(d.getTime()), "runAt is not a valid date"),
          v.check((d) => d.getUTCFullYear() >= 1 && d.getUTCFullYear() <= 9999, "runAt must fall in the years 1 to 9999"),
        ),
      ),
      delayMs: v.optional(span("delayMs")),
      maxAttempts: v.optional(int("maxAttempts", 1, 10_000)),
      timeoutMs: v.optional(int("timeoutMs", 1, INT4_MAX)),
      key: v.optional(v.pipe(v.string("key must be a string"), v.minLength(1, "key must not be empty"), v.maxLength(512, "key is longer than 512 characters"), storable("key"))),
      throttleMs: v.optional(int("throttleMs", 1, INT4_MAX)),
      debounceMs: v.optional(int("debounceMs", 0, INT4_MAX)),
      group: v.optional(v.pipe(v.string("group must be a string"), v.minLength(1, "group must not be empty"), v.maxLength(256, "group is longer than 256 characters"), storable("group"))),
      meta: v.optional(
        v.pipe(
          v.record(v.pipe(v.string(), v.maxLength(128, "a meta key is longer than 128 characters"), storable("a meta key")),
            v.pipe(v.string("meta values must be strings"), storable("a meta value")), "meta must be an object of strings"),
          v.check((m) => Object.keys(m).length <= 32, "meta takes at most 32 entries"),
          v.check((m) => JSON.stringify(m).length <= 4096, "meta is longer than 4096 characters of JSON"),
        ),
      ),
    },
    "unknown option; the options are queue, priority, runAt, delayMs, maxAttempts, timeoutMs, key, throttleMs, debounceMs, group and meta (and tx, beside them)",
  ),
  v.check((o) => !(o.runAt !== undefined && o.delayMs !== undefined), "give runAt or delayMs, not both"),
  v.check((o) => (o.throttleMs === undefined && o.debounceMs === undefined) || o.key !== undefined, "throttleMs and debounceMs need a key"),
  v.check((o) => !(o.throttleMs !== undefined && o.debounceMs !== undefined), "give throttleMs or debounceMs, not both"),
  v.check(
    (o) => o.debounceMs === undefined || (o.runAt === undefined && o.delayMs === undefined),
    "debounceMs sets the run time itself: leave out runAt and delayMs",
  ),
);

/** The settings a task definition may carry (checked by defineTask). */
export const taskSettingsSchema = v.object({
  name: taskNameSchema,
  handler: v.custom<unknown>((x) => typeof x === "function", "handler must be a function"),
  schema: v.optional(v.custom<unknown>((x) => typeof x === "object" && x !== null && "~standard" in x, "schema must be a valibot schema")),
  queue: v.optional(name("queue")),
  priority: v.optional(int("priority", -INT4_MAX, INT4_MAX)),
  maxAttempts: v.optional(int("maxAttempts", 1, 10_000)),
  timeoutMs: v.optional(int("timeoutMs", 1, INT4_MAX)),
  backoff: v.optional(
    v.strictObject({ baseMs: v.optional(int("backoff.baseMs", 0, INT4_MAX)), maxMs: v.optional(int("backoff.maxMs", 0, INT4_MAX)) }),
  ),
});

/** Checks that an options argument, if given, is an object, and its tx a postgres.js handle or a wrapped one. */
export function checkCallOptions(options: unknown): { tx?: unknown } {
  if (options === undefined || options === null) return {};
  if (typeof options !== "object") {
    throw new PgPulseError("INVALID_INPUT", "options must be an object", { details: [{ path: "options", message: "not an object" }] });
  }
  const { tx } = options as { tx?: unknown };
  const foreign = typeof tx === "object" && tx !== null && (tx as { foreign?: unknown }).foreign === true &&
    typeof (tx as { unsafe?: unknown }).unsafe === "function";
  if (tx !== undefined && typeof tx !== "function" && !foreign) {
    throw new PgPulseError("INVALID_INPUT", "tx must be a postgres.js sql or transaction, or another driver's transaction wrapped by pgpulse/pg, pgpulse/kysely or pgpulse/drizzle", {
      details: [{ path: "tx", message: "not a postgres.js handle or a wrapped transaction" }],
    });
  }
  return options as { tx?: unknown };
}

export type ParsedEnqueueOptions = v.InferOutput<typeof enqueueOptionsSchema>;

/** Turns valibot issues into pgpulse's issue list. */
export function toIssues(issues: readonly v.BaseIssue<unknown>[], prefix = ""): InputIssue[] {
  return issues.map((issue) => {
    const path = v.getDotPath(issue);
    return { path: [prefix, path].filter(Boolean).join("."), message: issue.message };
  });
}

/** Parses with a schema or throws a PgPulseError with every issue listed. */
export function parseOrThrow<S extends v.GenericSchema>(
  schema: S,
  input: unknown,
  code: "INVALID_INPUT" | "INVALID_PAYLOAD",
  prefix: string,
): v.InferOutput<S> {
  const result = v.safeParse(schema, input);
  if (result.success) return result.output;
  const issues = toIssues(result.issues, prefix);
  throw new PgPulseError(code, issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join("; "), {
    details: issues,
  });
}
