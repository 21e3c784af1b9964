import { Cron } from "croner";
import * as v from "valibot";
import type postgres from "postgres";
import type { SqlHandle } from "../db/connection.ts";
import { parseOrThrow, taskNameSchema, toIssues } from "./enqueue-options.ts";
import { PgPulseError } from "../shared/errors.ts";
import { toJsonText } from "../shared/json.ts";
import { isTaskDefinition, type TaskDefinition } from "../shared/task.ts";

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
    name: v.pipe(v.string("name must be a string"), v.minLength(1, "name must not be empty"), v.maxLength(128)),
    cron: v.string("cron must be a string"),
    task: v.unknown(),
    payload: v.optional(v.unknown()),
    timezone: v.optional(v.pipe(v.string("timezone must be a string"), v.minLength(1))),
    queue: v.optional(v.pipe(v.string(), v.minLength(1, "queue must not be empty"), v.maxLength(128))),
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

/** Checks a spec and returns the row to store. Throws INVALID_INPUT / INVALID_PAYLOAD. */
export async function scheduleRow(spec: ScheduleSpec, path = "") {
  const s = parseOrThrow(specSchema, spec, "INVALID_INPUT", path);
  const def = isTaskDefinition(s.task) ? (s.task as TaskDefinition) : undefined;
  const task = def ? def.name : s.task;
  parseOrThrow(taskNameSchema, task, "INVALID_INPUT", `${path ? `${path}.` : ""}task`);
  try {
    nextTick(s.cron, s.timezone ?? null, new Date());
  } catch (error) {
    throw new PgPulseError("INVALID_INPUT", `schedule ${s.name}: ${(error as Error).message}`, {
      details: [{ path: "cron", message: (error as Error).message }],
    });
  }
  const payload = s.payload ?? {};
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
    payload: toJsonText(payload, "payload"),
    options: JSON.stringify(Object.fromEntries(Object.entries(options).filter(([, x]) => x !== undefined))),
    catchUp: s.catchUp ?? 1,
  };
}

export function schedulesSql(q: string) {
  return {
    // A changed cron or zone starts counting from now; otherwise the schedule keeps its place.
    upsert: `
      insert into ${q}.schedules as s (name, cron, timezone, task, payload, options, catch_up, next_tick)
      values ($1, $2, $3, $4, $5::text::jsonb, $6::text::jsonb, $7, $8::timestamptz)
      on conflict (name) do update set
        cron = excluded.cron, timezone = excluded.timezone, task = excluded.task, payload = excluded.payload,
        options = excluded.options, catch_up = excluded.catch_up, updated_at = now(),
        next_tick = case when s.cron is distinct from excluded.cron or s.timezone is distinct from excluded.timezone
                         then excluded.next_tick else s.next_tick end
      returning *`,
    list: `select * from ${q}.schedules order by name`,
    remove: `delete from ${q}.schedules where name = $1 returning name`,
    due: `select * from ${q}.schedules where next_tick <= coalesce($1::timestamptz, now()) order by next_tick`,
    // Compare-and-set on the next_tick this worker read: one worker takes each tick.
    advance: `
      update ${q}.schedules set last_tick = $3::timestamptz, next_tick = $4::timestamptz, updated_at = now()
      where name = $1 and next_tick = $2::timestamptz returning name`,
    enqueue: `select count(*)::int as n from ${q}.enqueue_many($1::text::jsonb, $2::timestamptz)`,
  };
}

export type SchedulesSql = ReturnType<typeof schedulesSql>;

export async function upsertSchedule(sql: SqlHandle, text: SchedulesSql, spec: ScheduleSpec, now: Date | null): Promise<Schedule> {
  const row = await scheduleRow(spec);
  const first = nextTick(row.cron, row.timezone, now ?? new Date());
  const [stored] = await sql.unsafe(
    text.upsert,
    [row.name, row.cron, row.timezone, row.task, row.payload, row.options, row.catchUp, first],
    { prepare: true },
  );
  return scheduleFromRow(stored!);
}

export function scheduleFromRow(r: Record<string, any>): Schedule {
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

/**
 * Enqueues the jobs of every schedule whose next tick has come. Each worker
 * may call this; the compare-and-set on next_tick gives each tick to exactly
 * one of them, and its jobs are enqueued in the same transaction, so a worker
 * that dies in between leaves the tick untaken rather than lost.
 */
export async function runDueSchedules(
  sql: postgres.Sql,
  text: SchedulesSql,
  now: Date | null,
): Promise<{ name: string; ticks: Date[] }[]> {
  const at = now ?? new Date();
  const due = await sql.unsafe(text.due, [now], { prepare: true });
  const done: { name: string; ticks: Date[] }[] = [];
  for (const r of due) {
    const s = scheduleFromRow(r);
    const ticks: Date[] = [s.nextTick!];
    let next = nextTick(s.cron, s.timezone, s.nextTick!);
    // Ticks missed while nobody looked; only the last catchUp of them run.
    while (next && next <= at && ticks.length < 100_000) {
      ticks.push(next);
      next = nextTick(s.cron, s.timezone, next);
    }
    const run = ticks.slice(-s.catchUp);
    const specs = run.map((tick) => ({
      task: s.task,
      payload: s.payload,
      queue: s.options.queue,
      priority: s.options.priority,
      max_attempts: s.options.maxAttempts,
      timeout_ms: s.options.timeoutMs,
      run_at: tick.toISOString(),
      key: `schedule:${s.name}:${tick.toISOString()}`,
    }));
    const took = await sql.begin(async (tx) => {
      const moved = await tx.unsafe(text.advance, [s.name, s.nextTick, ticks[ticks.length - 1]!, next], { prepare: true });
      if (moved.length === 0) return false;
      await tx.unsafe(text.enqueue, [JSON.stringify(specs), now], { prepare: true });
      return true;
    });
    if (took) done.push({ name: s.name, ticks: run });
  }
  return done;
}
