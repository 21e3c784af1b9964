import { describe, expect, it } from "vitest";
import { VACUUM_DEAD_ROWS, Vacuum } from "../../src/maintenance/vacuum.ts";
import type { VacuumState } from "../../src/db/vacuum.ts";
import { FakeClock } from "../support/fake-clock.ts";
import { FakeDb } from "../support/fake-db.ts";
import { recordingEvents, recordingLogger, WORKER_ID } from "./helpers.ts";
import { serviceLoopContract } from "./service-contract.ts";

const NEEDED: VacuumState = { autovacuumOff: true, deadRows: VACUUM_DEAD_ROWS, recent: false };

function setup(state: VacuumState | null, intervalMs = 600_000) {
  const db = new FakeDb().on("jobsVacuumState", () => state);
  const rec = recordingEvents();
  const vacuum = new Vacuum({
    db, clock: new FakeClock(), workerId: WORKER_ID, dbNow: () => null, logger: recordingLogger(), events: rec.events,
    onError: () => {}, intervalMs,
  });
  return { db, rec, vacuum };
}

describe("Vacuum.runOnce", () => {
  it("vacuums when autovacuum is off, dead rows reached VACUUM_DEAD_ROWS and nobody vacuumed recently", async () => {
    const { db, rec, vacuum } = setup(NEEDED);
    expect(await vacuum.runOnce()).toBe(true);
    expect(db.count("jobsVacuum")).toBe(1);
    expect(rec.emitted).toEqual([{ event: "jobs:vacuumed", payload: { workerId: WORKER_ID } }]);
  });

  it("asks whether someone vacuumed within half its interval", async () => {
    const { db, vacuum } = setup(NEEDED);
    await vacuum.runOnce();
    expect(db.calls.jobsVacuumState).toEqual([[300_000]]);
  });

  it("asks in whole milliseconds when its interval is odd (the database takes a bigint)", async () => {
    const { db, vacuum } = setup(NEEDED, 1001);
    await vacuum.runOnce();
    expect(db.calls.jobsVacuumState).toEqual([[500]]);
  });

  it.each([
    ["autovacuum is on", { ...NEEDED, autovacuumOff: false }],
    ["one dead row short of the threshold", { ...NEEDED, deadRows: VACUUM_DEAD_ROWS - 1 }],
    ["someone vacuumed recently", { ...NEEDED, recent: true }],
    ["the jobs table is not there", null],
  ])("does nothing when %s", async (_, state) => {
    const { db, rec, vacuum } = setup(state);
    expect(await vacuum.runOnce()).toBe(false);
    expect(db.count("jobsVacuumState")).toBe(1);
    expect(db.count("jobsVacuum")).toBe(0);
    expect(rec.emitted).toEqual([]);
  });

  it("a failed vacuum fails the pass, with no event", async () => {
    const { db, rec, vacuum } = setup(NEEDED);
    db.fail("jobsVacuum", new Error("permission denied"));
    await expect(vacuum.runOnce()).rejects.toThrow("permission denied");
    expect(rec.emitted).toEqual([]);
  });
});

describe("Vacuum loop", () => {
  serviceLoopContract({
    intervalMs: 600_000,
    op: "jobsVacuumState",
    idle: null,
    make: ({ db, clock, onError }) =>
      new Vacuum({
        db, clock, onError, workerId: WORKER_ID, dbNow: () => null, logger: recordingLogger(),
        events: recordingEvents().events, intervalMs: 600_000,
      }),
  });
});
