// The API's shapes for schedules: a cron schedule's definition, as stored and returned,
// and a trigger.
import * as v from "valibot";
import { int, name, storable } from "../../producer/enqueue-options.ts";
import { INT4_MAX, jobKey, nullableDateTime } from "./common.ts";

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
    key: v.optional(jobKey("Idempotency key: while a job with this key is queued or running, it is returned (200) instead. Default schedule:<name>:manual:<time>.")),
  },
  "unknown field; the only field is key",
);
