// The API's shapes for queues and workers: limits, summaries, prune, per-minute
// figures, the workers' list and health.
import * as v from "valibot";
import { int, name, span } from "../../producer/enqueue-options.ts";
import { INT4_MAX, count, dateTime } from "./common.ts";

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
    completedMs: v.optional(v.pipe(span("completedMs"), v.description("Completed jobs that finished longer ago than this are deleted. Default one day; at most 100 years."))),
    failedMs: v.optional(v.pipe(span("failedMs"), v.description("Failed and cancelled jobs that finished longer ago than this are deleted. Default 14 days; at most 100 years."))),
  },
  "unknown field; the fields are completedMs and failedMs",
);
export const pruneResultSchema = v.object({ deleted: v.pipe(count, v.description("Jobs deleted.")) });

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
