import { describe, expect, it } from "vitest";
import type { ScheduleRow } from "../../src/db/schedules.ts";
import { Scheduler } from "../../src/maintenance/scheduler.ts";
import { upsertSchedule } from "../../src/producer/schedules.ts";
import { FakeClock } from "../support/fake-clock.ts";
import { FakeDb } from "../support/fake-db.ts";
import { recordingEvents, recordingLogger, WORKER_ID } from "./helpers.ts";
import { serviceLoopContract } from "./service-contract.ts";

const at = (iso: string) => new Date(iso);

function row(over: Partial<ScheduleRow> = {}): ScheduleRow {
  return {
    name: "report",
    cron: "* * * * *",
    timezone: null,
    task: "send-report",
    payload: { to: "ops" },
    options: {},
    catch_up: 1,
    last_tick: null,
    next_tick: at("2024-03-01T10:00:00.000Z"),
    ...over,
  };
}

/** `dbNow`: the worker's clock override (null: none); `dbAt`: the time the database finds the rows due by. */
function setup(rows: ScheduleRow[], dbNow: Date | null, dbAt: Date | null = dbNow) {
  const db = new FakeDb().on("scheduleDue", () => ({ at: dbAt, schedules: rows }));
  const clock = new FakeClock();
  const rec = recordingEvents();
  const scheduler = new Scheduler({
    db, clock, workerId: WORKER_ID, dbNow: () => dbNow, logger: recordingLogger(), events: rec.events,
    onError: () => {}, intervalMs: 1000,
  });
  return { db, clock, rec, scheduler };
}

const specsOf = (db: FakeDb, i = 0) => JSON.parse(db.params("scheduleTake")[i]!.specs) as Record<string, unknown>[];

describe("Scheduler.runOnce", () => {
  it("counts the ticks missed up to now and enqueues only the last one (catchUp 1)", async () => {
    const now = at("2024-03-01T10:05:30.000Z");
    const { db, rec, scheduler } = setup([row()], now);
    const done = await scheduler.runOnce();
    expect(db.calls.scheduleDue).toEqual([[now]]);
    const take = db.params("scheduleTake");
    expect(take).toHaveLength(1);
    expect(take[0]).toMatchObject({
      name: "report",
      expected: at("2024-03-01T10:00:00.000Z"),
      lastTick: at("2024-03-01T10:05:00.000Z"),
      nextTick: at("2024-03-01T10:06:00.000Z"),
      now,
    });
    expect(specsOf(db)).toEqual([
      {
        task: "send-report",
        payload: { to: "ops" },
        run_at: "2024-03-01T10:05:00.000Z",
        key: "schedule:report:2024-03-01T10:05:00.000Z",
      },
    ]);
    expect(done).toEqual([{ name: "report", ticks: [at("2024-03-01T10:05:00.000Z")] }]);
    expect(rec.emitted).toEqual([
      { event: "schedule:enqueued", payload: { workerId: WORKER_ID, name: "report", ticks: [at("2024-03-01T10:05:00.000Z")] } },
    ]);
  });

  it("runs the last catchUp of the missed ticks, each keyed by its tick, with the schedule's options", async () => {
    const options = { queue: "reports", priority: 5, maxAttempts: 2, timeoutMs: 9000 };
    const { db, scheduler } = setup([row({ catch_up: 3, options })], at("2024-03-01T10:05:30.000Z"));
    const done = await scheduler.runOnce();
    const ticks = ["2024-03-01T10:03:00.000Z", "2024-03-01T10:04:00.000Z", "2024-03-01T10:05:00.000Z"];
    expect(specsOf(db)).toEqual(
      ticks.map((tick) => ({
        task: "send-report", payload: { to: "ops" }, queue: "reports", priority: 5, max_attempts: 2, timeout_ms: 9000,
        run_at: tick, key: `schedule:report:${tick}`,
      })),
    );
    expect(db.params("scheduleTake")[0]!.lastTick).toEqual(at("2024-03-01T10:05:00.000Z"));
    expect(done).toEqual([{ name: "report", ticks: ticks.map(at) }]);
  });

  it("runs every missed tick when there are fewer than catchUp", async () => {
    const { db, scheduler } = setup([row({ catch_up: 10 })], at("2024-03-01T10:01:59.999Z"));
    await scheduler.runOnce();
    expect(specsOf(db).map((s) => s.run_at)).toEqual(["2024-03-01T10:00:00.000Z", "2024-03-01T10:01:00.000Z"]);
    expect(db.params("scheduleTake")[0]!.nextTick).toEqual(at("2024-03-01T10:02:00.000Z"));
  });

  it("counts a tick that falls exactly on now", async () => {
    const { db, scheduler } = setup([row({ catch_up: 5 })], at("2024-03-01T10:02:00.000Z"));
    await scheduler.runOnce();
    expect(specsOf(db)).toHaveLength(3);
    expect(db.params("scheduleTake")[0]!.nextTick).toEqual(at("2024-03-01T10:03:00.000Z"));
  });

  it("reads the cron in the schedule's timezone (across a DST change)", async () => {
    const ny = row({ cron: "0 9 * * *", timezone: "America/New_York", catch_up: 5, next_tick: at("2024-03-09T14:00:00.000Z") });
    const { db, scheduler } = setup([ny], at("2024-03-11T14:30:00.000Z"));
    await scheduler.runOnce();
    expect(specsOf(db).map((s) => s.run_at)).toEqual(["2024-03-09T14:00:00.000Z", "2024-03-10T13:00:00.000Z", "2024-03-11T13:00:00.000Z"]);
    expect(db.params("scheduleTake")[0]!.nextTick).toEqual(at("2024-03-12T13:00:00.000Z"));
  });

  it("skips a tick another worker took, and goes on with the next schedule", async () => {
    const { db, rec, scheduler } = setup([row({ name: "a" }), row({ name: "b" })], at("2024-03-01T10:00:30.000Z"));
    db.answer("scheduleTake", false, true);
    const done = await scheduler.runOnce();
    expect(db.params("scheduleTake").map((p) => p.name)).toEqual(["a", "b"]);
    expect(done).toEqual([{ name: "b", ticks: [at("2024-03-01T10:00:00.000Z")] }]);
    expect(rec.of("schedule:enqueued").map((e) => e.name)).toEqual(["b"]);
  });

  it("without a clock override, passes now: null and counts ticks up to the database's time, not the worker's clock", async () => {
    const { db, clock, scheduler } = setup([row()], null, at("2024-03-01T10:02:30.000Z"));
    clock.set(Date.parse("2024-03-01T10:12:30.000Z")); // the worker's clock is 10 minutes fast
    await scheduler.runOnce();
    expect(db.calls.scheduleDue).toEqual([[null]]);
    expect(db.params("scheduleTake")[0]).toMatchObject({
      lastTick: at("2024-03-01T10:02:00.000Z"), nextTick: at("2024-03-01T10:03:00.000Z"), now: null,
    });
  });

  it("after days down, runs the latest catchUp ticks, found without counting every tick missed", async () => {
    const perSecond = row({ cron: "* * * * * *", catch_up: 2, next_tick: at("2024-03-01T00:00:00.000Z") });
    const { db, scheduler } = setup([perSecond], at("2024-03-04T00:00:00.500Z")); // 259,200 ticks later
    // (counting every tick stopped at 100,000 of them, so it ran the wrong ticks, and took seconds a pass)
    await scheduler.runOnce();
    expect(specsOf(db).map((s) => s.run_at)).toEqual(["2024-03-03T23:59:59.000Z", "2024-03-04T00:00:00.000Z"]);
    expect(db.params("scheduleTake")[0]).toMatchObject({ lastTick: at("2024-03-04T00:00:00.000Z"), nextTick: at("2024-03-04T00:00:01.000Z") });
  });

  it("does nothing when nothing is due", async () => {
    const { db, rec, scheduler } = setup([], at("2024-03-01T10:00:00.000Z"));
    expect(await scheduler.runOnce()).toEqual([]);
    expect(db.count("scheduleTake")).toBe(0);
    expect(rec.emitted).toEqual([]);
  });
});

describe("upsertSchedule: a new schedule's first tick", () => {
  const spec = { name: "report", cron: "*/5 * * * *", task: "send-report" };

  it("is the next tick after the database's time, whatever this process's clock says", async () => {
    // (this process's clock is years past the database's here)
    const db = new FakeDb().once("scheduleClock", () => at("2024-03-01T10:02:30.000Z"));
    const { schedule, created } = await upsertSchedule(db, spec, null);
    expect(created).toBe(true);
    expect(db.params("scheduleUpsert")).toHaveLength(1);
    expect(db.calls.scheduleUpsert[0]![1]).toEqual(at("2024-03-01T10:05:00.000Z"));
    expect(schedule.nextTick).toEqual(at("2024-03-01T10:05:00.000Z"));
  });

  it("with a clock override (the tests' stand-in for the database's), counts from it without asking the database", async () => {
    const db = new FakeDb();
    await upsertSchedule(db, spec, at("2024-03-01T10:05:00.000Z"));
    expect(db.count("scheduleClock")).toBe(0);
    expect(db.calls.scheduleUpsert[0]![1]).toEqual(at("2024-03-01T10:10:00.000Z"));
  });

  it("refuses a bad cron with INVALID_INPUT before it asks the database anything", async () => {
    const db = new FakeDb();
    await expect(upsertSchedule(db, { ...spec, cron: "every day" }, null)).rejects.toMatchObject({ code: "INVALID_INPUT" });
    expect(db.count("scheduleClock") + db.count("scheduleUpsert")).toBe(0);
  });
});

describe("Scheduler loop", () => {
  serviceLoopContract({
    intervalMs: 1000,
    op: "scheduleDue",
    idle: { at: null, schedules: [] },
    make: ({ db, clock, onError }) =>
      new Scheduler({
        db, clock, onError, workerId: WORKER_ID, dbNow: () => null, logger: recordingLogger(),
        events: recordingEvents().events, intervalMs: 1000,
      }),
  });
});
