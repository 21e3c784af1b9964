import { describe, expect, it } from "vitest";
import type { QueueRow } from "../../src/db/queues.ts";
import type { ClaimedJob } from "../../src/shared/types.ts";
import { Claimer } from "../../src/worker/claimer.ts";
import { QueueWatch, tightened } from "../../src/worker/queue-watch.ts";
import { FakeClock } from "../support/fake-clock.ts";
import { FakeDb } from "../support/fake-db.ts";
import { job, recordingEvents, recordingLogger, WORKER_ID } from "./helpers.ts";

const unset = { paused: false, concurrency: null, group_concurrency: null, rate_max: null, rate_interval_ms: null };
const settings = (name: string, over: Partial<QueueRow> = {}): QueueRow => ({ name, ...unset, ...over });

describe("tightened: the changes workers are told of", () => {
  it.each([
    ["paused", {}, { paused: true }, true],
    ["still paused", { paused: true }, { paused: true }, false],
    ["resumed", { paused: true }, {}, false],
    ["a concurrency limit set", {}, { concurrency: 5 }, true],
    ["a concurrency limit lowered", { concurrency: 5 }, { concurrency: 3 }, true],
    ["a concurrency limit raised", { concurrency: 3 }, { concurrency: 10 }, false],
    ["a concurrency limit lifted", { concurrency: 3 }, {}, false],
    ["a group limit set", {}, { group_concurrency: 2 }, true],
    ["a rate limit set", {}, { rate_max: 10, rate_interval_ms: 1000 }, true],
    ["a rate limit's max raised", { rate_max: 10, rate_interval_ms: 1000 }, { rate_max: 20, rate_interval_ms: 1000 }, false],
    ["a rate limit's interval lengthened", { rate_max: 20, rate_interval_ms: 1000 }, { rate_max: 20, rate_interval_ms: 2000 }, true],
  ] as const)("%s: %s", (_, was, is, expected) => {
    expect(tightened({ ...unset, ...was }, { ...unset, ...is })).toBe(expected);
  });
});

function setup() {
  const db = new FakeDb();
  const restricted: string[] = [];
  const errors: [string, unknown][] = [];
  const watch = new QueueWatch({
    db, queues: ["a", "b"], restrict: (queue) => void restricted.push(queue), onError: (during, error) => errors.push([during, error]),
  });
  return { db, restricted, errors, watch };
}

describe("QueueWatch.check", () => {
  it("reads its queues' settings in one statement; the first read restricts only a queue paused already", async () => {
    const { db, restricted, watch } = setup();
    db.answer("queueSettings", [settings("a", { paused: true }), settings("b", { concurrency: 2 })]);
    expect(await watch.check()).toEqual(["a"]);
    expect(db.calls.queueSettings).toEqual([[["a", "b"]]]);
    expect(restricted).toEqual(["a"]);
  });

  it("then restricts the queues paused or limited more tightly since the read before, and no others", async () => {
    const { db, restricted, watch } = setup();
    db.answer(
      "queueSettings",
      [settings("b", { concurrency: 2 })],
      [settings("a", { paused: true }), settings("b", { concurrency: 4 })], // a paused (its row new); b loosened
      [settings("a", { paused: true }), settings("b", { concurrency: 1 })], // b tightened
      [settings("b", { concurrency: 1 })], // a's row gone: no limits, not paused
    );
    expect(await watch.check()).toEqual([]);
    expect(await watch.check()).toEqual(["a"]);
    expect(await watch.check()).toEqual(["b"]);
    expect(await watch.check()).toEqual([]);
    expect(restricted).toEqual(["a", "b"]);
  });

  it("a read that fails is reported and changes nothing: the next compares with the last that landed", async () => {
    const { db, restricted, errors, watch } = setup();
    db.answer("queueSettings", [settings("a")]);
    await watch.check();
    db.fail("queueSettings", new Error("connection lost"));
    expect(await watch.check()).toEqual([]);
    expect(errors.map(([during]) => during)).toEqual(["reading its queues' settings"]);
    db.answer("queueSettings", [settings("a", { paused: true })]);
    expect(await watch.check()).toEqual(["a"]);
    expect(restricted).toEqual(["a"]);
  });
});

describe("a polling worker's sweep", () => {
  function polling() {
    const db = new FakeDb();
    const clock = new FakeClock();
    const released: string[] = [];
    const runner = {
      size: 2,
      waiting: new Map<string, { job: ClaimedJob; since: number }>([["w1", { job: job("w1", { queue: "a" }), since: clock.now() }]]),
      prefetch: () => 0,
      accept: () => {},
      giveBack: () => {},
      releaseWaitingOlderThan: () => 0,
      releaseWaitingOf(queue: string) {
        const ids = [...runner.waiting].filter(([, w]) => w.job.queue === queue).map(([id]) => id);
        for (const id of ids) runner.waiting.delete(id);
        released.push(...ids);
        return ids.length;
      },
    };
    const claimer: Claimer = new Claimer({
      db, workerId: WORKER_ID, queues: ["a"], tasks: ["work"], concurrency: 2, runner, pollIntervalMs: 100, pollIntervalMaxMs: 1000,
      watchQueues: () => watch.check(),
      clock, dbNow: () => null, logger: recordingLogger(), events: recordingEvents().events, onError: () => {},
      open: () => true, driven: () => false,
    });
    const watch = new QueueWatch({ db, queues: ["a"], restrict: (queue) => claimer.restrict(queue), onError: () => {} });
    return { db, claimer, runner, released };
  }

  it("with its slots full (no claim to make), still reads its queues, and gives back what it holds of one paused since", async () => {
    const { db, claimer, released } = polling();
    db.answer("queueSettings", [], [settings("a", { paused: true })]);
    await claimer.runOnce();
    expect(released).toEqual([]);
    await claimer.runOnce();
    expect(released).toEqual(["w1"]);
    expect(db.count("queueSettings")).toBe(2);
    // (the slots stayed full: no claim)
    expect(db.count("jobClaim")).toBe(0);
  });

  it("reads its queues before it claims, one statement a sweep however many jobs it holds", async () => {
    const { db, claimer, runner } = polling();
    runner.size = 0;
    const order: string[] = [];
    db.on("queueSettings", () => (order.push("settings"), []));
    db.on("jobClaim", () => (order.push("claim"), { jobs: [], wakeMs: null, unstarted: new Map() }));
    await claimer.runOnce();
    await claimer.runOnce();
    expect(order).toEqual(["settings", "claim", "settings", "claim"]);
  });
});
