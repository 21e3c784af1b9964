import * as v from "valibot";
import { type InputIssue, PgPulseError } from "./errors.ts";

const INT4_MAX = 2_147_483_647;

const name = (what: string) =>
  v.pipe(v.string(`${what} must be a string`), v.minLength(1, `${what} must not be empty`), v.maxLength(128, `${what} is longer than 128 characters`));

const int = (what: string, min: number, max: number) =>
  v.pipe(
    v.number(`${what} must be a number`),
    v.integer(`${what} must be an integer`),
    v.minValue(min, `${what} must be at least ${min}`),
    v.maxValue(max, `${what} must be at most ${max}`),
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
          v.union([v.date(), v.string()], "runAt must be a Date or an ISO 8601 string"),
          v.transform((x) => (x instanceof Date ? x : new Date(x))),
          v.check((d) => !Number.isNaN(d.getTime()), "runAt is not a valid date"),
        ),
      ),
      delayMs: v.optional(int("delayMs", 0, Number.MAX_SAFE_INTEGER)),
      maxAttempts: v.optional(int("maxAttempts", 1, 10_000)),
      timeoutMs: v.optional(int("timeoutMs", 1, INT4_MAX)),
      key: v.optional(v.pipe(v.string("key must be a string"), v.minLength(1, "key must not be empty"), v.maxLength(512, "key is longer than 512 characters"))),
      tx: v.optional(v.custom<unknown>((x) => typeof x === "function", "tx must be a postgres.js sql or transaction")),
    },
    "unknown option; the options are queue, priority, runAt, delayMs, maxAttempts, timeoutMs, key and tx",
  ),
  v.check((o) => !(o.runAt !== undefined && o.delayMs !== undefined), "give runAt or delayMs, not both"),
);

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
