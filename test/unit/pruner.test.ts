import { describe, expect, it } from "vitest";
import {
  PRUNE_BATCH, Pruner, type PrunerOptions, RETENTION_COMPLETED_MS_DEFAULT, RETENTION_FAILED_MS_DEFAULT,
} from "../../src/maintenance/pruner.ts";
import { FakeClock } from "../support/fake-clock.ts";
import { FakeDb } from "../support/fake-db.ts";
import { recordingEvents, recordingLogger, WORKER_ID } from "./helpers.ts";
import { serviceLoopContract } from "./service-contract.ts";

const DB_NOW = new Date("2024-03-01T10:00:00.000Z");

function setup(over: Partial<PrunerOptions> = {}) {
  const db = new FakeDb();
  const rec = recordingEvents();
  const pruner = new Pruner({
    db, clock: new FakeClock(), workerId: WORKER_ID, dbNow: () => DB_NOW, logger: recordingLogger(), events: rec.events,
    onError: () => {}, retention: { completedMs: 60_000, failedMs: 120_000 }, intervalMs: 60_000, ...over,
  });
  return { db, rec, pruner };
}

describe("Pruner.runOnce", () => {
  /** A slice that took PRUNE_BATCH jobs, the last of them `last`, and deleted `deleted`. */
  const full = (deleted: number, last: string) => ({ deleted, next: last });
  const short = (deleted: number) => ({ deleted, next: null });

  it("deletes slices with the retention and dbNow, each after the last id of the one before, until one comes back short", async () => {
    const { db, rec, pruner } = setup();
    db.answer("jobPruneBatch", full(PRUNE_BATCH, "1000"), full(PRUNE_BATCH + 500, "2000"), short(250));
    expect(await pruner.runOnce()).toBe(2 * PRUNE_BATCH + 500 + 250);
    const params = { completedMs: 60_000, failedMs: 120_000, limit: PRUNE_BATCH, now: DB_NOW };
    expect(db.params("jobPruneBatch")).toEqual([
      { ...params, after: "0" }, { ...params, after: "1000" }, { ...params, after: "2000" },
    ]);
    expect(rec.emitted).toEqual([{ event: "jobs:pruned", payload: { workerId: WORKER_ID, deleted: 2 * PRUNE_BATCH + 750 } }]);
  });

  it("goes on after a full slice that deleted little (a batch held back), and asks once more after a full one", async () => {
    const { db, pruner } = setup();
    db.answer("jobPruneBatch", full(3, "1000"), full(PRUNE_BATCH, "2000"), short(0));
    expect(await pruner.runOnce()).toBe(PRUNE_BATCH + 3);
    expect(db.count("jobPruneBatch")).toBe(3);
  });

  it("stops on null (another worker holds the prune lock), keeping what it deleted before", async () => {
    const { db, rec, pruner } = setup();
    db.answer("jobPruneBatch", full(PRUNE_BATCH, "1000"), null, full(PRUNE_BATCH, "2000"));
    expect(await pruner.runOnce()).toBe(PRUNE_BATCH);
    expect(db.count("jobPruneBatch")).toBe(2);
    expect(rec.of("jobs:pruned")).toEqual([{ workerId: WORKER_ID, deleted: PRUNE_BATCH }]);
  });

  it("emits nothing when the lock is held elsewhere from the start", async () => {
    const { db, rec, pruner } = setup();
    db.answer("jobPruneBatch", null);
    expect(await pruner.runOnce()).toBe(0);
    expect(db.count("jobPruneBatch")).toBe(1);
    expect(rec.emitted).toEqual([]);
  });

  it("emits nothing when nothing was past retention", async () => {
    const { db, rec, pruner } = setup();
    expect(await pruner.runOnce()).toBe(0);
    expect(db.count("jobPruneBatch")).toBe(1);
    expect(rec.emitted).toEqual([]);
  });

  it("uses the default retention for what is not set, and now: null without a clock override", async () => {
    const { db, pruner } = setup({ retention: { failedMs: 5000 }, dbNow: () => null });
    await pruner.runOnce();
    expect(db.params("jobPruneBatch")).toEqual([
      { completedMs: RETENTION_COMPLETED_MS_DEFAULT, failedMs: 5000, limit: PRUNE_BATCH, now: null, after: "0" },
    ]);
    const defaults = setup({ retention: {} });
    await defaults.pruner.runOnce();
    expect(defaults.db.params("jobPruneBatch")[0]).toMatchObject({
      completedMs: RETENTION_COMPLETED_MS_DEFAULT, failedMs: RETENTION_FAILED_MS_DEFAULT,
    });
  });

  it("rejects a bad retention with INVALID_INPUT before touching the database", async () => {
    const { db, pruner } = setup({ retention: { completedMs: -1 } });
    await expect(pruner.runOnce()).rejects.toMatchObject({ code: "INVALID_INPUT" });
    expect(db.count("jobPruneBatch")).toBe(0);
  });

  it("a failed slice fails the pass, with no event", async () => {
    const { db, rec, pruner } = setup();
    db.answer("jobPruneBatch", full(PRUNE_BATCH, "1000"));
    db.fail("jobPruneBatch", new Error("statement timeout"));
    await expect(pruner.runOnce()).rejects.toThrow("statement timeout");
    expect(rec.emitted).toEqual([]);
  });
});

describe("Pruner loop", () => {
  serviceLoopContract({
    intervalMs: 60_000,
    op: "jobPruneBatch",
    idle: { deleted: 0, next: null },
    make: ({ db, clock, onError }) =>
      new Pruner({
        db, clock, onError, workerId: WORKER_ID, dbNow: () => null, logger: recordingLogger(),
        events: recordingEvents().events, retention: {}, intervalMs: 60_000,
      }),
  });
});
