import { Cron } from "croner";
import * as v from "valibot";
import type { Db } from "../db/db.ts";
import type { ScheduleRow } from "../db/schedules.ts";
import { name as nameSchema, parseOrThrow, taskNameSchema, toIssues } from "./enqueue-options.ts";
import { MAX_PAYLOAD_BYTES_DEFAULT } from "../shared/defaults.ts";
import { PgPulseError } from "../shared/errors.ts";
import { toJsonText, unstorable } from "../shared/json.ts";
import { isTaskDefinition, type TaskDefinition } from "../shared/task.ts";
import { insertJobs } from "./insert.ts";
import type { EnqueuedJob } from "../shared/types.ts";

/** A recurring job: `task` with `payload`, enqueued at every tick of `cron`. */
export interface ScheduleSpec {
  /** Unique name; adding a schedule with an existing name replaces its definition. */
  name: string;
  /** Five or six fields (seconds first when six), as croner reads them: "0 9 * * 1-5". */
  cron: string;
  task: string | TaskDefinition<any, any>;
  payload?: unknown;
  /** IANA zone the cron is read in, e.g. "Europe/Oslo". @default UTC */
  timezone?: string;
  queue?: string;
  priority?: number;
  maxAttempts?: number;
  timeoutMs?: number;
  /**
   * At most this many jobs for the ticks that came due since the last look;
   * after downtime these are the latest missed ticks. @default 1
   */
  catchUp?: number;
}

export interface Schedule extends Required<Pick<ScheduleSpec, "name" | "cron" | "payload" | "catchUp">> {
  task: string;
  timezone: string | null;
  options: { queue?: string; priority?: number; maxAttempts?: number; timeoutMs?: number };
  lastTick: Date | null;
  nextTick: Date | null;
}

const INT4_MAX = 2_147_483_647;
const int = (what: string, min: number, max = INT4_MAX) =>
  v.optional(v.pipe(v.number(`${what} must be a number`), v.integer(`${what} must be an integer`), v.minValue(min), v.maxValue(max)));

const specSchema = v.strictObject(
  {
    name: nameSchema("name"),
    cron: v.string("cron must be a string"),
    task: v.unknown(),
    payload: v.optional(v.unknown()),
    timezone: v.optional(v.pipe(v.string("timezone must be a string"), v.minLength(1))),
    queue: v.optional(nameSchema("queue")),
    priority: int("priority", -INT4_MAX),
    maxAttempts: int("maxAttempts", 1, 10_000),
    timeoutMs: int("timeoutMs", 1),
    catchUp: int("catchUp", 1, 1000),
  },
  "unknown option; see ScheduleSpec",
);

/** The next tick strictly after `after`, or null when the pattern has no more. */
export function nextTick(cron: string, timezone: string | null, after: Date): Date | null {
  return new Cron(cron, { paused: true, ...(timezone ? { timezone } : {}) }).nextRun(after);
}

function knownTimezone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** Checks a spec and returns the row to store. Throws INVALID_INPUT / INVALID_PAYLOAD. */
async function scheduleRow(spec: ScheduleSpec, maxPayloadBytes: number, path = "") {
  const s = parseOrThrow(specSchema, spec, "INVALID_INPUT", path);
  const def = isTaskDefinition(s.task) ? (s.task as TaskDefinition) : undefined;
  const task = def ? def.name : s.task;
  parseOrThrow(taskNameSchema, task, "INVALID_INPUT", `${path ? `${path}.` : ""}task`);
  if (s.timezone !== undefined && !knownTimezone(s.timezone)) {
    throw new PgPulseError("INVALID_INPUT", `schedule ${s.name}: timezone ${JSON.stringify(s.timezone)} is not an IANA time zone`, {
      details: [{ path: "timezone", message: "not an IANA time zone, such as Europe/Oslo" }],
    });
  }
  try {
    nextTick(s.cron, s.timezone ?? null, new Date());
  } catch (error) {
    throw new PgPulseError("INVALID_INPUT", `schedule ${s.name}: ${(error as Error).message}`, {
      details: [{ path: "cron", message: (error as Error).message }],
    });
  }
  // (only a payload left out is {}: an explicit null is a payload, as an enqueue's is)
  const payload = s.payload === undefined ? {} : s.payload;
  if (def?.schema) {
    const checked = await v.safeParseAsync(def.schema, payload);
    if (!checked.success) {
      const issues = toIssues(checked.issues, "payload");
      throw new PgPulseError("INVALID_PAYLOAD", `schedule ${s.name}: payload for task "${def.name}" is invalid`, { details: issues });
    }
  }
  const options = {
    queue: s.queue ?? def?.queue,
    priority: s.priority ?? def?.priority,
    maxAttempts: s.maxAttempts ?? def?.maxAttempts,
    timeoutMs: s.timeoutMs ?? def?.timeoutMs,
  };
  return {
    name: s.name,
    cron: s.cron,
    timezone: s.timezone ?? null,
    task: task as string,
    payload: toJsonText(payload, "payload", maxPayloadBytes),
    options: JSON.stringify(Object.fromEntries(Object.entries(options).filter(([, x]) => x !== undefined))),
    catchUp: s.catchUp ?? 1,
  };
}

/**
 * Adds or replaces a schedule; a new one first fires at its next tick after the
 * database's time (`now`, when given: the tests' stand-in for it), as its later
 * ticks are counted, so a process whose clock is off neither skips nor advances
 * the first run. A replaced one keeps its next tick unless its cron or zone
 * changed. `created` says it was new.
 */
export async function upsertSchedule(
  db: Pick<Db, "scheduleUpsert" | "scheduleClock">, spec: ScheduleSpec, now: Date | null, maxPayloadBytes: number = MAX_PAYLOAD_BYTES_DEFAULT,
): Promise<{ schedule: Schedule; created: boolean }> {
  const row = await scheduleRow(spec, maxPayloadBytes);
  const first = nextTick(row.cron, row.timezone, now ?? (await db.scheduleClock()));
  const stored = await db.scheduleUpsert(row, first);
  return { schedule: scheduleFromRow(stored), created: stored.inserted };
}

const scheduleNameSchema = nameSchema("name");

/** Checks a schedule's name as given to get, remove and trigger. */
export function checkScheduleName(name: string): string {
  return parseOrThrow(scheduleNameSchema, name, "INVALID_INPUT", "name");
}

/**
 * The enqueue_many spec of the job a schedule makes: its task, payload and
 * options, with a key naming the schedule. A tick's runs at the tick; one
 * without runAt (a trigger) runs now.
 */
export function scheduledJobSpec(s: Schedule, key: string, runAt?: Date) {
  return {
    task: s.task,
    payload: s.payload,
    queue: s.options.queue,
    priority: s.options.priority,
    max_attempts: s.options.maxAttempts,
    timeout_ms: s.options.timeoutMs,
    ...(runAt ? { run_at: runAt.toISOString() } : {}),
    key,
  };
}

const triggerOptionsSchema = v.strictObject(
  {
    key: v.optional(
      v.pipe(
        v.string("key must be a string"),
        v.minLength(1, "key must not be empty"),
        v.maxLength(512, "key is longer than 512 characters"),
        v.check((k: string) => unstorable(k) === null, (issue) => `key ${unstorable(issue.input as string)}`),
      ),
    ),
  },
  "unknown option; trigger takes key",
);

/**
 * Enqueues a schedule's job now, once, as a tick makes it (its task, payload
 * and options, through the same statement), without moving the schedule's
 * next tick. Its key is `schedule:<name>:manual:<time>` unless `key` is given:
 * while a job with that key is queued or running, that job comes back
 * (deduplicated) instead of a new one. Throws NOT_FOUND when there is no such schedule.
 */
export async function triggerSchedule(
  db: Pick<Db, "scheduleGet" | "jobEnqueueMany" | "jobInsertMany">, name: string, options: { key?: string } = {}, now: Date = new Date(),
): Promise<EnqueuedJob> {
  checkScheduleName(name);
  const o = parseOrThrow(triggerOptionsSchema, options, "INVALID_INPUT", "");
  const row = await db.scheduleGet(name);
  if (!row) throw new PgPulseError("NOT_FOUND", `no schedule named ${JSON.stringify(name)}`, { details: { name } });
  const schedule = scheduleFromRow(row);
  const spec = scheduledJobSpec(schedule, o.key ?? `schedule:${name}:manual:${now.toISOString()}`);
  // The job is the schedule's, as a tick makes it: built from the spec when it is new.
  const so = schedule.options;
  const opts = { queue: so.queue ?? undefined, priority: so.priority ?? undefined, maxAttempts: so.maxAttempts ?? undefined, timeoutMs: so.timeoutMs ?? undefined, key: spec.key };
  const prepared = { text: JSON.stringify(spec), keyed: true, task: spec.task, opts, payloadText: spec.payload === undefined ? "{}" : JSON.stringify(spec.payload) };
  const [job] = await insertJobs(db, [prepared], "triggering the schedule again returns the job");
  return job!;
}

export function scheduleFromRow(r: ScheduleRow): Schedule {
  return {
    name: r.name,
    cron: r.cron,
    timezone: r.timezone,
    task: r.task,
    payload: r.payload,
    options: r.options,
    catchUp: r.catch_up,
    lastTick: r.last_tick,
    nextTick: r.next_tick,
  };
}

