import { describe, expect, it } from "vitest";
import { Reaper, type ReaperOptions } from "../../src/maintenance/reaper.ts";
import { FakeClock } from "../support/fake-clock.ts";
import { FakeDb } from "../support/fake-db.ts";
import { recordingEvents, recordingLogger, WORKER_ID } from "./helpers.ts";
import { serviceLoopContract } from "./service-contract.ts";

const DB_NOW = new Date("2024-03-01T10:00:00.000Z");

function setup(over: Partial<ReaperOptions> = {}) {
  const db = new FakeDb();
  const clock = new FakeClock();
  const rec = recordingEvents();
  const errors: unknown[] = [];
  const reaper = new Reaper({
    db, clock, workerId: WORKER_ID, dbNow: () => DB_NOW, logger: recordingLogger(), events: rec.events,
    onError: (e) => errors.push(e), staleAfterMs: 30_000, intervalMs: 5000, ...over,
  });
  return { db, clock, rec, errors, reaper };
}

describe("Reaper.runOnce", () => {
  it("reaps with staleAfterMs and the database clock's stand-in, never its own worker", async () => {
    const { db, reaper } = setup({ staleAfterMs: 12_345 });
    await reaper.runOnce();
    expect(db.params("workerReap")).toEqual([{ staleAfterMs: 12_345, now: DB_NOW, self: WORKER_ID }]);
  });

  it("passes now: null when the worker has no clock override", async () => {
    const { db, reaper } = setup({ dbNow: () => null });
    await reaper.runOnce();
    expect(db.params("workerReap")).toEqual([{ staleAfterMs: 30_000, now: null, self: WORKER_ID }]);
  });

  it("emits reaper:reaped with what it took back, and returns it", async () => {
    const { db, rec, reaper } = setup();
    const result = { ran: true, workers: ["w-dead"], jobs: [{ id: "7", status: "queued" as const }, { id: "8", status: "failed" as const }] };
    db.answer("workerReap", result);
    expect(await reaper.runOnce()).toEqual(result);
    expect(rec.emitted).toEqual([{ event: "reaper:reaped", payload: { workerId: WORKER_ID, ...result } }]);
  });

  it("emits when only orphaned jobs (no dead worker) came back", async () => {
    const { db, rec, reaper } = setup();
    db.answer("workerReap", { ran: true, workers: [], jobs: [{ id: "9", status: "cancelled" }] });
    await reaper.runOnce();
    expect(rec.of("reaper:reaped")).toEqual([{ workerId: WORKER_ID, ran: true, workers: [], jobs: [{ id: "9", status: "cancelled" }] }]);
  });

  it("emits nothing when nothing was reaped, or another worker held the lock", async () => {
    const { db, rec, reaper } = setup();
    db.answer("workerReap", { ran: true, workers: [], jobs: [] }, { ran: false, workers: [], jobs: [] });
    expect(await reaper.runOnce()).toEqual({ ran: true, workers: [], jobs: [] });
    expect(await reaper.runOnce()).toEqual({ ran: false, workers: [], jobs: [] });
    expect(rec.emitted).toEqual([]);
  });

  it("runOnce() reaps even while holdOff() says the loop should not", async () => {
    const { db, reaper } = setup({ holdOff: () => true });
    await reaper.runOnce();
    expect(db.count("workerReap")).toBe(1);
  });
});

describe("Reaper loop", () => {
  it("skips its passes while holdOff() is true, and reaps again once it is false", async () => {
    let holding = true;
    const { db, clock, reaper } = setup({ holdOff: () => holding, intervalMs: 1000 });
    reaper.start();
    await clock.advance(3000);
    expect(db.count("workerReap")).toBe(0);
    // the loop goes on while it holds off
    expect(clock.pending()).toBe(1);
    holding = false;
    await clock.advance(1000);
    expect(db.count("workerReap")).toBe(1);
    await reaper.stop();
  });

  // Was a bug in Periodic (src/shared/service.ts): start() while stop() still waited for a
  // pass set a timer, and the pass, ending, saw the loop running again and set a second one.
  it("start() called while stop() waits for a pass does not start a second loop", async () => {
    const { db, clock, reaper } = setup({ intervalMs: 1000 });
    const first = db.hang("workerReap");
    reaper.start();
    await clock.advance(1000);
    const stopping = reaper.stop();
    reaper.start();
    first.resolve({ ran: true, workers: [], jobs: [] });
    await stopping;
    await clock.flush();
    expect(clock.pending()).toBe(1);
    await clock.advance(1000);
    expect(db.count("workerReap")).toBe(2);
    await reaper.stop();
  });

  serviceLoopContract({
    intervalMs: 5000,
    op: "workerReap",
    idle: { ran: true, workers: [], jobs: [] },
    make: ({ db, clock, onError }) =>
      new Reaper({
        db, clock, onError, workerId: WORKER_ID, dbNow: () => null, logger: recordingLogger(),
        events: recordingEvents().events, staleAfterMs: 30_000, intervalMs: 5000,
      }),
  });
});
