import { type DbContext, inTx, run } from "./context.ts";

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
      returning *, (xmax = 0) as inserted`,
    // The database's time, that a new schedule's first tick is counted from.
    clock: `select now() as at`,
    get: `select * from ${q}.schedules where name = $1`,
    list: `select * from ${q}.schedules order by name`,
    remove: `delete from ${q}.schedules where name = $1 returning name`,
    // (each row carries the time it was due by, so that ticks are counted on the clock that found them due)
    due: `select s.*, t.at as due_at from (select coalesce($1::timestamptz, now()) as at) t
          join ${q}.schedules s on s.next_tick <= t.at order by s.next_tick`,
    // Compare-and-set on the next_tick this worker read: one worker takes each tick.
    advance: `
      update ${q}.schedules set last_tick = $3::timestamptz, next_tick = $4::timestamptz, updated_at = now()
      where name = $1 and next_tick = $2::timestamptz returning name`,
    enqueue: `select count(*)::int as n from ${q}.enqueue_many($1::text::jsonb, $2::timestamptz)`,
  };
}

/** A schedule as stored. */
export interface ScheduleRow {
  name: string;
  cron: string;
  timezone: string | null;
  task: string;
  payload: unknown;
  options: { queue?: string; priority?: number; maxAttempts?: number; timeoutMs?: number };
  catch_up: number;
  last_tick: Date | null;
  next_tick: Date | null;
}

/** A schedule's definition to store: payload and options as JSON text. */
export interface ScheduleInput {
  name: string;
  cron: string;
  timezone: string | null;
  task: string;
  payload: string;
  options: string;
  catchUp: number;
}

export interface ScheduleTakeParams {
  name: string;
  /** The next_tick read from the row: the tick is taken only if nobody moved it since. */
  expected: Date;
  lastTick: Date;
  nextTick: Date | null;
  /** enqueue_many specs, as a JSON array. */
  specs: string;
  now: Date | null;
}

export function schedulesOps(c: DbContext, t: ReturnType<typeof schedulesSql>) {
  return {
    /** The database's time. */
    async scheduleClock(): Promise<Date> {
      const [row] = await run(c, t.clock);
      return (row as unknown as { at: Date }).at;
    },
    /** Adds or replaces a schedule; `inserted` says it was new. */
    async scheduleUpsert(s: ScheduleInput, firstTick: Date | null): Promise<ScheduleRow & { inserted: boolean }> {
      const [row] = await run(c, t.upsert, [s.name, s.cron, s.timezone, s.task, s.payload, s.options, s.catchUp, firstTick]);
      return row as unknown as ScheduleRow & { inserted: boolean };
    },
    async scheduleGet(name: string): Promise<ScheduleRow | null> {
      const [row] = await run(c, t.get, [name]);
      return (row as unknown as ScheduleRow | undefined) ?? null;
    },
    async scheduleList(): Promise<ScheduleRow[]> {
      return (await run(c, t.list)) as unknown as ScheduleRow[];
    },
    /** False when there was no schedule by that name. */
    async scheduleRemove(name: string): Promise<boolean> {
      return (await run(c, t.remove, [name])).length > 0;
    },
    /** The schedules whose next tick has come by `now` (null: the database's clock), and that time. */
    async scheduleDue(now: Date | null): Promise<{ at: Date | null; schedules: ScheduleRow[] }> {
      const rows = (await run(c, t.due, [now])) as unknown as (ScheduleRow & { due_at: Date })[];
      return { at: rows[0]?.due_at ?? now, schedules: rows.map(({ due_at: _, ...row }) => row) };
    },
    /**
     * Moves a schedule past its due ticks and enqueues their jobs, in one
     * transaction: a worker that dies in between leaves the tick untaken
     * rather than lost. False when another worker took it first.
     */
    scheduleTake(p: ScheduleTakeParams): Promise<boolean> {
      return inTx(c, async (tx) => {
        const moved = await run(tx, t.advance, [p.name, p.expected, p.lastTick, p.nextTick]);
        if (moved.length === 0) return false;
        await run(tx, t.enqueue, [p.specs, p.now]);
        return true;
      });
    },
  };
}
