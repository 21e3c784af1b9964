import { describe, expect, it } from "vitest";
import type { ClaimedJob } from "../../src/shared/types.ts";
import { Claimer } from "../../src/worker/claimer.ts";
import { SlotWaiters } from "../../src/worker/slots.ts";
import { Cut, STOP_CANCEL_MS, STOP_IO_TIMEOUT_MS, stopParts, type StopParts } from "../../src/worker/stop.ts";
import { FakeClock } from "../support/fake-clock.ts";
import { FakeDb } from "../support/fake-db.ts";
import { jobs, recordingEvents, recordingLogger, WORKER_ID } from "./helpers.ts";

const GRACE_MS = 120_000;
const cancelled = () => Object.assign(new Error("canceling statement due to user request"), { code: "57014" });

/** A stop of a worker whose parts are fakes, but for a real claimer on a fake database, on a fake clock. */
function setup() {
  const clock = new FakeClock();
  const db = new FakeDb();
  const calls: string[] = [];
  const errors: [string, unknown][] = [];
  const runner = {
    closed: false,
    size: 0,
    waiting: new Map<string, unknown>(),
    givenBack: [] as ClaimedJob[][],
    prefetch: () => 0,
    accept: (list: ClaimedJob[]) => void (runner.size += list.length),
    giveBack: (list: ClaimedJob[]) => void runner.givenBack.push(list),
    releaseWaitingOlderThan: () => 0,
    releaseWaitingOf: () => 0,
    releaseWaiting: () => void calls.push("release waiting"),
    releaseAll(reason: string) {
      calls.push(`release all: ${reason}`);
      runner.size = 0;
    },
  };
  const state = { open: true };
  const claimer = new Claimer({
    db, workerId: WORKER_ID, queues: ["default"], tasks: ["work"], concurrency: 4, runner, pollIntervalMs: 2000,
    clock, dbNow: () => null, logger: recordingLogger(), events: recordingEvents().events,
    onError: (during, error) => errors.push([during, error]),
    open: () => state.open && !runner.closed,
    driven: () => false,
  });
  const done = async () => void 0;
  const parts: StopParts = {
    runner, claimer,
    maintenance: [claimer],
    progress: { flush: done, stop: () => {} },
    logs: { flush: done, stop: () => {} },
    finisher: { flush: async () => void calls.push("finisher flush"), abandon: () => void calls.push("abandon") },
    statsWriter: null,
    lease: { stop: done, unregister: async () => void calls.push("unregister") },
    listener: { stop: async (ms) => void calls.push(`listener stop, ${ms} ms`) },
    announceRoster: done,
    statements: {
      close: () => void calls.push("close statements"),
      cancelAll: async (ms) => void calls.push(`cancel in flight, ${ms} ms`),
    },
    sql: { end: async ({ timeout }) => void calls.push(`end, timeout ${timeout} s`) },
    owned: true,
  };
  const cut = new Cut();
  let stopped = false;
  const stop = () =>
    stopParts(parts, {
      clock, logger: recordingLogger(), fail: (during) => (error) => errors.push([during, error]), graceMs: GRACE_MS, cut,
      slots: new SlotWaiters(clock), announces: false,
      onStopped: () => (state.open = false),
    }).then(() => (stopped = true));
  return { clock, db, calls, errors, runner, claimer, parts, cut, stop, isStopped: () => stopped };
}

describe("stop: what it waits for, and what it leaves", () => {
  it("a cut while a claim is out cancels the claim, gives back the running job, and leaves no timer set", async () => {
    const { clock, db, calls, errors, runner, claimer, cut, stop, isStopped } = setup();
    runner.size = 1;
    const hung = db.hang("jobClaim");
    void claimer.request("sweep");
    const [, signal] = await hung.called;
    // the database layer: an aborted signal cancels the statement, which fails with 57014
    signal!.addEventListener("abort", () => hung.reject(cancelled()));
    const stopping = stop();
    await clock.flush();
    expect(isStopped()).toBe(false);
    expect(signal!.aborted).toBe(false);
    cut.cut();
    await stopping;
    expect(signal!.aborted).toBe(true);
    // (the cancelled claim is no error)
    expect(errors).toEqual([]);
    expect(calls).toEqual([
      "release waiting", "release all: worker stopping", "finisher flush", "unregister", "close statements",
      `listener stop, ${STOP_CANCEL_MS} ms`, `cancel in flight, ${STOP_CANCEL_MS} ms`, `end, timeout ${STOP_IO_TIMEOUT_MS / 1000} s`,
    ]);
    expect(clock.pending()).toBe(0);
  });

  it("a claim that does not end when cancelled (the database unreachable) holds the stop for the last writes' budget only, and leaves no timer", async () => {
    const { clock, db, calls, claimer, cut, stop, isStopped } = setup();
    const hung = db.hang("jobClaim");
    void claimer.request("sweep");
    const [, signal] = await hung.called;
    const stopping = stop();
    cut.cut();
    await clock.flush();
    expect(signal!.aborted).toBe(true);
    expect(isStopped()).toBe(false);
    await clock.advance(STOP_IO_TIMEOUT_MS);
    await stopping;
    // the writes' part of the budget went to the claim: the pool gets the part kept for the end
    expect(calls.at(-1)).toBe(`end, timeout ${STOP_CANCEL_MS / 1000} s`);
    expect(clock.pending()).toBe(0);
  });

  it("without a cut, a claim out is waited for up to STOP_IO_TIMEOUT_MS, then cancelled", async () => {
    const { clock, db, claimer, stop } = setup();
    const hung = db.hang("jobClaim");
    void claimer.request("sweep");
    const [, signal] = await hung.called;
    signal!.addEventListener("abort", () => hung.reject(cancelled()));
    const stopping = stop();
    await clock.advance(STOP_IO_TIMEOUT_MS - 1);
    expect(signal!.aborted).toBe(false);
    await clock.advance(1);
    await stopping;
    expect(signal!.aborted).toBe(true);
    expect(clock.pending()).toBe(0);
  });

  it("a claim that comes back in time is not cancelled, and its jobs are given back", async () => {
    const { clock, db, runner, claimer, stop } = setup();
    const hung = db.hang("jobClaim");
    void claimer.request("sweep");
    const [, signal] = await hung.called;
    const stopping = stop();
    await clock.flush();
    const got = jobs(1, 2);
    hung.resolve({ jobs: got, wakeMs: null, unstarted: new Map() });
    await stopping;
    expect(signal!.aborted).toBe(false);
    expect(runner.givenBack).toEqual([got]);
    expect(clock.pending()).toBe(0);
  });

  it("a cut while running jobs are waited for ends the wait and clears the grace period's timer", async () => {
    const { clock, calls, runner, cut, stop, isStopped } = setup();
    runner.size = 2;
    const stopping = stop();
    await clock.flush();
    expect(clock.dueTimes()).toEqual([clock.now() + GRACE_MS]);
    expect(isStopped()).toBe(false);
    cut.cut();
    await stopping;
    expect(calls).toContain("release all: worker stopping");
    expect(clock.pending()).toBe(0);
  });

  it("parts that never answer hold the stop for its budget only: what is in flight is cancelled, the listener stopped and the pool ended within it, and no timer is left", async () => {
    const { clock, calls, parts, stop, isStopped } = setup();
    const never = () => new Promise<never>(() => {});
    parts.progress.flush = never;
    parts.logs.flush = never;
    parts.finisher.flush = never;
    parts.lease.stop = never;
    parts.lease.unregister = never;
    parts.listener.stop = (ms) => (calls.push(`listener stop, ${ms} ms`), never());
    parts.statements.cancelAll = (ms) => (calls.push(`cancel in flight, ${ms} ms`), never());
    parts.sql.end = ({ timeout }) => (calls.push(`end, timeout ${timeout} s`), never());
    const stopping = stop();
    // The writes may take the budget but its last part, kept to end what is still in flight.
    await clock.advance(STOP_IO_TIMEOUT_MS - STOP_CANCEL_MS - 1);
    expect(calls).not.toContain("abandon");
    await clock.advance(1);
    expect(calls.slice(-3)).toEqual(["close statements", `listener stop, ${STOP_CANCEL_MS} ms`, `cancel in flight, ${STOP_CANCEL_MS} ms`]);
    await clock.advance(STOP_CANCEL_MS - 1);
    expect(isStopped()).toBe(false);
    await clock.advance(1);
    await stopping;
    // (the pool is ended with nothing left to wait: postgres.js closes its connections at once)
    expect(calls.at(-1)).toBe("end, timeout 0 s");
    expect(calls).toContain("abandon");
    expect(clock.pending()).toBe(0);
  });

  it("the pool's end gets what is left of the budget, to the millisecond", async () => {
    const { clock, calls, parts, stop } = setup();
    let wrote!: () => void;
    parts.finisher.flush = () => new Promise<void>((r) => (wrote = r));
    const stopping = stop();
    await clock.advance(2500);
    wrote();
    await stopping;
    expect(calls.at(-1)).toBe(`end, timeout ${(STOP_IO_TIMEOUT_MS - 2500) / 1000} s`);
    expect(clock.pending()).toBe(0);
  });

  it("a pool the caller gave is not ended: what the worker has in flight on it is cancelled all the same", async () => {
    const { clock, calls, parts, stop } = setup();
    parts.owned = false;
    await stop();
    expect(calls.slice(-3)).toEqual(["close statements", `listener stop, ${STOP_CANCEL_MS} ms`, `cancel in flight, ${STOP_CANCEL_MS} ms`]);
    expect(calls.some((c) => c.startsWith("end"))).toBe(false);
    expect(clock.pending()).toBe(0);
  });
});
