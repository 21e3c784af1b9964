import { describe, expect, it } from "vitest";
import type { Claimed } from "../../src/db/claim.ts";
import type { ClaimedJob } from "../../src/shared/types.ts";
import { Claimer, type ClaimerOptions, UNWRITTEN_MAX, WAITING_MAX_MS } from "../../src/worker/claimer.ts";
import { FakeClock } from "../support/fake-clock.ts";
import { FakeDb } from "../support/fake-db.ts";
import { job, jobs, recordingEvents, recordingLogger, WORKER_ID } from "./helpers.ts";

const DB_NOW = new Date("2024-03-01T10:00:00.000Z");
const POLL_MS = 2000;

/** The slice of JobRunner the claimer reads: running and waiting counts, and where jobs go. */
function fakeRunner(concurrency: number) {
  const runner = {
    size: 0,
    waiting: new Map<string, { job: ClaimedJob; since: number }>(),
    prefetchTo: 0,
    accepted: [] as { jobs: ClaimedJob[]; unstarted: ReadonlyMap<string, number> | undefined }[],
    givenBack: [] as ClaimedJob[][],
    releasedOlderThan: [] as number[],
    prefetch: () => runner.prefetchTo,
    accept(list: ClaimedJob[], unstarted?: ReadonlyMap<string, number>) {
      runner.accepted.push({ jobs: list, unstarted });
      for (const job of list) {
        if (runner.size < concurrency) runner.size++;
        else runner.waiting.set(job.id, { job, since: 0 });
      }
    },
    giveBack: (list: ClaimedJob[]) => void runner.givenBack.push(list),
    releaseWaitingOlderThan(ms: number) {
      runner.releasedOlderThan.push(ms);
      return 0;
    },
    releasedOf: [] as string[][],
    releaseWaitingOf(queue: string) {
      const ids = [...runner.waiting].filter(([, w]) => w.job.queue === queue).map(([id]) => id);
      for (const id of ids) runner.waiting.delete(id);
      runner.releasedOf.push(ids);
      return ids.length;
    },
  };
  return runner;
}

function setup(over: { concurrency?: number; pollIntervalMaxMs?: number; unwritten?: () => number } = {}) {
  const concurrency = over.concurrency ?? 10;
  const db = new FakeDb();
  const clock = new FakeClock();
  const rec = recordingEvents();
  const runner = fakeRunner(concurrency);
  const errors: [string, unknown][] = [];
  const flags = { open: true, driven: false };
  const options: ClaimerOptions = {
    db, workerId: WORKER_ID, queues: ["high", "default"], tasks: ["work"], concurrency, runner, pollIntervalMs: POLL_MS,
    ...(over.pollIntervalMaxMs ? { pollIntervalMaxMs: over.pollIntervalMaxMs } : {}),
    clock, dbNow: () => DB_NOW, logger: recordingLogger(), events: rec.events,
    onError: (during, error) => errors.push([during, error]),
    open: () => flags.open,
    driven: () => flags.driven,
    ...(over.unwritten ? { unwritten: over.unwritten } : {}),
  };
  const claimer = new Claimer(options);
  /** Fills the runner: running and waiting jobs. */
  const fill = (running: number, waiting = 0) => {
    runner.size = running;
    for (let i = 0; i < waiting; i++) runner.waiting.set(`w${i}`, { job: jobs(`w${i}`)[0]!, since: 0 });
  };
  return { db, clock, rec, runner, errors, flags, claimer, fill };
}

const claimed = (list: ClaimedJob[], over: Partial<Claimed> = {}): Claimed => ({ jobs: list, wakeMs: null, unstarted: new Map(), ...over });
const sizes = (db: FakeDb) => db.params("jobClaim").map((p) => ({ limit: p.limit, ahead: p.ahead }));

describe("Claimer: how many to claim", () => {
  it("claims the free slots (concurrency - running - waiting), none ahead without a backlog", async () => {
    const { db, claimer, fill } = setup();
    fill(3, 2);
    await claimer.request("notify");
    expect(db.params("jobClaim")).toEqual([
      { queues: ["high", "default"], tasks: ["work"], limit: 5, ahead: 0, workerId: WORKER_ID, now: DB_NOW },
    ]);
  });

  it("with a backlog claims prefetch() more; ahead is only the part beyond the free slots", async () => {
    const { db, runner, claimer, fill } = setup();
    fill(3, 2);
    runner.prefetchTo = 4;
    claimer.markBacklog();
    await claimer.request("notify");
    expect(sizes(db)).toEqual([{ limit: 9, ahead: 4 }]);
  });

  it("with every slot busy and a backlog, the whole claim is ahead, less what already waits", async () => {
    const { db, runner, claimer, fill } = setup();
    fill(10, 3);
    runner.prefetchTo = 4;
    claimer.markBacklog();
    await claimer.request("notify");
    expect(sizes(db)).toEqual([{ limit: 1, ahead: 1 }]);
  });

  it("claims nothing while UNWRITTEN_MAX ends are run and not written, and no more than the room below it", async () => {
    let unwritten = UNWRITTEN_MAX;
    const { db, claimer } = setup({ unwritten: () => unwritten });
    expect(await claimer.request("notify")).toBe(0);
    expect(db.count("jobClaim")).toBe(0);
    // claimed again once ends are written (refillHooks: a written end claims again with a backlog)
    expect(claimer.backlog).toBe(true);
    unwritten = UNWRITTEN_MAX - 3;
    await claimer.request("slots freed");
    expect(sizes(db)).toEqual([{ limit: 3, ahead: 0 }]);
  });

  it("does not claim ahead without a backlog, whatever prefetch() says", async () => {
    const { db, runner, claimer, fill } = setup();
    fill(10);
    runner.prefetchTo = 4;
    expect(await claimer.request("notify")).toBe(0);
    expect(db.count("jobClaim")).toBe(0);
    // Nothing was free: there may be more jobs than slots, so the next claim reaches ahead.
    expect(claimer.backlog).toBe(true);
    await claimer.request("notify");
    expect(sizes(db)).toEqual([{ limit: 4, ahead: 4 }]);
  });

  it("a claim that comes back full sets the backlog; one that comes back short clears it", async () => {
    const { db, runner, claimer } = setup();
    db.answer("jobClaim", claimed(jobs(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)), claimed(jobs(11)));
    await claimer.request("notify");
    expect(claimer.backlog).toBe(true);
    runner.size = 0; // they all ran
    await claimer.request("slots freed");
    expect(sizes(db)).toEqual([{ limit: 10, ahead: 0 }, { limit: 10, ahead: 0 }]);
    expect(claimer.backlog).toBe(false);
  });

  it("never claims ahead when driven(): requests do nothing, and claim() sticks to the free slots", async () => {
    const { db, runner, flags, claimer, fill } = setup();
    flags.driven = true;
    fill(3);
    runner.prefetchTo = 4;
    claimer.markBacklog();
    expect(await claimer.request("notify")).toBe(0);
    expect(db.count("jobClaim")).toBe(0);
    await claimer.claim("available");
    expect(sizes(db)).toEqual([{ limit: 7, ahead: 0 }]);
  });

  it("honours the cap, taking it from the free slots first", async () => {
    const { db, runner, flags, claimer, fill } = setup();
    flags.driven = true;
    fill(3);
    await claimer.claim("available", 2);
    flags.driven = false;
    runner.prefetchTo = 4;
    claimer.markBacklog();
    await claimer.claim("sweep", 9);
    expect(sizes(db)).toEqual([{ limit: 2, ahead: 0 }, { limit: 9, ahead: 2 }]);
  });

  it("hands the jobs and their unstarted starts to runner.accept, and emits worker:claimed", async () => {
    const { db, rec, runner, claimer } = setup({ concurrency: 2 });
    const got = jobs(1, 2);
    const unstarted = new Map([["2", 1234.5]]);
    db.answer("jobClaim", claimed(got, { unstarted }));
    expect(await claimer.request("listener up")).toBe(2);
    expect(runner.accepted).toEqual([{ jobs: got, unstarted }]);
    expect(rec.of("worker:claimed")).toEqual([{ workerId: WORKER_ID, jobs: got, requested: 2, reason: "listener up" }]);
  });
});

describe("Claimer: one claim in flight", () => {
  it("requests made meanwhile join it, then fold into exactly one more claim", async () => {
    const { db, rec, clock, claimer } = setup();
    const hung = db.hang("jobClaim");
    const first = claimer.request("notify");
    const joined = [claimer.request("notify"), claimer.request("sweep"), claimer.request("slots freed")];
    expect(claimer.claiming).toBe(true);
    expect(db.count("jobClaim")).toBe(1);
    hung.resolve(claimed(jobs(1, 2)));
    expect(await Promise.all([first, ...joined])).toEqual([2, 2, 2, 2]);
    await clock.flush();
    expect(db.count("jobClaim")).toBe(2);
    expect(rec.of("worker:claimed").map((e) => e.reason)).toEqual(["notify", "again"]);
    expect(claimer.claiming).toBe(false);
  });

  it("with the slots full when the claim returns, a request made meanwhile is kept as a backlog, not dropped", async () => {
    const { db, clock, runner, claimer } = setup({ concurrency: 3 });
    const hung = db.hang("jobClaim");
    void claimer.request("notify");
    // a notification during the claim: its jobs may have committed after the claim's snapshot
    void claimer.request("notify");
    runner.size = 2;
    // a short claim (1 of 3) fills the slots: no claim now...
    hung.resolve(claimed(jobs(1)));
    await clock.flush();
    expect(db.count("jobClaim")).toBe(1);
    expect(runner.size).toBe(3);
    // ...but one as soon as a slot frees (the worker claims on a freed slot while backlog is set)
    expect(claimer.backlog).toBe(true);
  });

  it("a short claim with nothing asked meanwhile leaves no backlog", async () => {
    const { db, clock, runner, claimer } = setup({ concurrency: 3 });
    const hung = db.hang("jobClaim");
    void claimer.request("notify");
    runner.size = 2;
    hung.resolve(claimed(jobs(1)));
    await clock.flush();
    expect(db.count("jobClaim")).toBe(1);
    expect(claimer.backlog).toBe(false);
  });

  it("settled() follows the claim in flight and never rejects", async () => {
    const { db, clock, claimer } = setup();
    const hung = db.hang("jobClaim");
    void claimer.request("notify");
    let settled = false;
    void claimer.settled().then(() => (settled = true));
    await clock.flush();
    expect(settled).toBe(false);
    hung.reject(new Error("connection reset"));
    await clock.flush();
    expect(settled).toBe(true);
  });

  it("a claim that returns once open() is false gives its jobs back and takes none in", async () => {
    const { db, clock, rec, runner, flags, claimer } = setup();
    const hung = db.hang("jobClaim");
    const result = claimer.request("notify");
    void claimer.request("notify");
    flags.open = false;
    const got = jobs(1, 2);
    hung.resolve(claimed(got, { wakeMs: 500 }));
    expect(await result).toBe(0);
    await clock.flush();
    expect(runner.givenBack).toEqual([got]);
    expect(runner.accepted).toEqual([]);
    expect(rec.of("worker:claimed")).toEqual([]);
    // nor does it claim again, or set a wake-up, while closed
    expect(db.count("jobClaim")).toBe(1);
    expect(clock.pending()).toBe(0);
  });

  it("requests do nothing while open() is false", async () => {
    const { db, flags, claimer } = setup();
    flags.open = false;
    expect(await claimer.request("notify")).toBe(0);
    expect(db.count("jobClaim")).toBe(0);
  });

  it("a driven claim (runAvailable's) claims nothing while open() is false", async () => {
    const { db, flags, runner, claimer } = setup();
    flags.driven = true;
    flags.open = false;
    expect(await claimer.claim("available")).toBe(0);
    expect(db.count("jobClaim")).toBe(0);
    expect(runner.givenBack).toEqual([]);
  });

  it("a failed claim goes to onError and resolves 0; the next request claims again", async () => {
    const { db, errors, runner, claimer } = setup();
    const error = new Error("connection reset");
    db.fail("jobClaim", error);
    expect(await claimer.request("notify")).toBe(0);
    expect(errors).toEqual([["claiming jobs", error]]);
    expect(claimer.claiming).toBe(false);
    expect(runner.accepted).toEqual([]);
    db.answer("jobClaim", claimed(jobs(1)));
    expect(await claimer.request("notify")).toBe(1);
  });
});

describe("Claimer: a claim undone because the lease was lost", () => {
  it("is not an error: nothing claimed, nothing reported, the next request claims again", async () => {
    const { db, errors, claimer } = setup();
    db.fail("jobClaim", Object.assign(new Error("pgpulse: worker w-test lost its lease while claiming; the claim is undone"), { code: "55000" }));
    expect(await claimer.request("notify")).toBe(0);
    expect(errors).toEqual([]);
    db.answer("jobClaim", claimed(jobs(1)));
    expect(await claimer.request("notify")).toBe(1);
  });

  it("another 55000 is still an error", async () => {
    const { db, errors, claimer } = setup();
    db.fail("jobClaim", Object.assign(new Error("object not in prerequisite state"), { code: "55000" }));
    expect(await claimer.request("notify")).toBe(0);
    expect(errors.map(([during]) => during)).toEqual(["claiming jobs"]);
  });
});

describe("Claimer: wake-up timer", () => {
  it("a claim's wakeMs sets a timer on the clock that claims when it fires", async () => {
    const { db, clock, rec, claimer } = setup();
    const t0 = clock.now();
    db.answer("jobClaim", claimed([], { wakeMs: 3000 }));
    await claimer.request("notify");
    expect(clock.dueTimes()).toEqual([t0 + 3000]);
    await clock.advance(2999);
    expect(db.count("jobClaim")).toBe(1);
    await clock.advance(1);
    expect(db.count("jobClaim")).toBe(2);
    expect(rec.of("worker:claimed").map((e) => e.reason)).toEqual(["notify", "timer"]);
    expect(clock.pending()).toBe(0);
  });

  it("keeps only the earliest wake-up", async () => {
    const { db, clock, claimer } = setup();
    const t0 = clock.now();
    claimer.wakeIn(3000);
    claimer.wakeIn(1000);
    claimer.wakeIn(5000);
    expect(clock.dueTimes()).toEqual([t0 + 1000]);
    await clock.advance(10_000);
    expect(db.count("jobClaim")).toBe(1);
    // once fired, a later wake-up is set again
    claimer.wakeIn(5000);
    expect(clock.dueTimes()).toEqual([t0 + 15_000]);
  });

  it("sets no wake-up while open() is false", () => {
    const { clock, flags, claimer } = setup();
    flags.open = false;
    claimer.wakeIn(1000);
    expect(clock.pending()).toBe(0);
  });
});

describe("Claimer: the sweep", () => {
  it("runOnce gives back jobs waiting longer than WAITING_MAX_MS, then claims", async () => {
    const { db, rec, runner, claimer } = setup();
    expect(WAITING_MAX_MS).toBe(5000);
    await claimer.runOnce();
    expect(runner.releasedOlderThan).toEqual([WAITING_MAX_MS]);
    expect(db.count("jobClaim")).toBe(1);
    expect(rec.of("worker:claimed").map((e) => e.reason)).toEqual(["sweep"]);
  });

  it("start() sweeps every pollIntervalMs", async () => {
    const { db, clock, claimer } = setup();
    claimer.start();
    await clock.advance(POLL_MS - 1);
    expect(db.count("jobClaim")).toBe(0);
    await clock.advance(1);
    expect(db.count("jobClaim")).toBe(1);
    await clock.advance(POLL_MS);
    expect(db.count("jobClaim")).toBe(2);
    await claimer.stop();
  });

  it("stop() clears the wake-up timer and the sweep: no timers left, no claims after", async () => {
    const { db, clock, claimer } = setup();
    claimer.start();
    claimer.wakeIn(10_000);
    expect(clock.pending()).toBe(2);
    await claimer.stop();
    expect(clock.pending()).toBe(0);
    await clock.advance(60_000);
    expect(db.count("jobClaim")).toBe(0);
  });
});

describe("Claimer: the sweep backs off while idle (a worker without LISTEN)", () => {
  it("each empty sweep doubles the wait up to pollIntervalMaxMs; a claim with jobs resets it", async () => {
    const { db, clock, claimer, runner } = setup({ pollIntervalMaxMs: 10_000 });
    claimer.start();
    const sweepTimes: number[] = [];
    db.on("jobClaim", () => (sweepTimes.push(clock.now()), claimed([])));
    const t0 = clock.now();
    await clock.advance(2000 + 4000 + 8000 + 10_000 + 10_000);
    expect(sweepTimes.map((t) => t - t0)).toEqual([2000, 6000, 14_000, 24_000, 34_000]);
    expect(claimer.sweepIntervalMs).toBe(10_000);
    db.once("jobClaim", () => claimed(jobs(1)));
    await clock.advance(10_000);
    expect(claimer.sweepIntervalMs).toBe(POLL_MS);
    runner.size = 0;
    await claimer.stop();
  });

  it("a sweep that finds nothing while jobs run does not back off", async () => {
    const { claimer, fill } = setup({ pollIntervalMaxMs: 10_000 });
    fill(3);
    await claimer.runOnce();
    await claimer.runOnce();
    expect(claimer.sweepIntervalMs).toBe(POLL_MS);
  });

  it("without pollIntervalMaxMs the sweep keeps to pollIntervalMs", async () => {
    const { claimer } = setup();
    for (let i = 0; i < 5; i++) await claimer.runOnce();
    expect(claimer.sweepIntervalMs).toBe(POLL_MS);
  });
});

describe("Claimer: a queue paused or limited", () => {
  it("gives back that queue's jobs claimed ahead (not the others'), and keeps a backlog to claim again", async () => {
    const { db, runner, claimer } = setup({ concurrency: 2 });
    runner.size = 2;
    runner.waiting.set("a1", { job: job("a1", { queue: "high" }), since: 0 });
    runner.waiting.set("b1", { job: job("b1", { queue: "default" }), since: 0 });
    runner.waiting.set("a2", { job: job("a2", { queue: "high" }), since: 0 });
    claimer.restrict("high");
    expect(runner.releasedOf).toEqual([["a1", "a2"]]);
    expect([...runner.waiting.keys()]).toEqual(["b1"]);
    // claimed again once they are written back (a written end claims while there is a backlog)
    expect(claimer.backlog).toBe(true);
    expect(db.count("jobClaim")).toBe(0);
  });

  it("ignores a queue it does not serve, and asks for no claim when it held none of the queue's jobs", async () => {
    const { db, runner, claimer } = setup({ concurrency: 2 });
    runner.waiting.set("o1", { job: job("o1", { queue: "other" }), since: 0 });
    claimer.restrict("other");
    claimer.restrict("high");
    await claimer.settled();
    expect(runner.releasedOf).toEqual([[]]);
    expect(db.count("jobClaim")).toBe(0);
  });

  it("gives back that queue's jobs from a claim that was out when it changed, takes in the rest, and keeps a backlog", async () => {
    const { db, clock, runner, claimer } = setup({ concurrency: 4 });
    const hung = db.hang("jobClaim");
    void claimer.request("notify");
    claimer.restrict("high");
    hung.resolve(claimed([job("1", { queue: "high" }), job("2", { queue: "default" }), job("3", { queue: "high" })]));
    await clock.flush();
    expect(runner.givenBack.map((list) => list.map((j) => j.id))).toEqual([["1", "3"]]);
    expect(runner.accepted.map((a) => a.jobs.map((j) => j.id))).toEqual([["2"]]);
    // claimed again once they are written back (a written end claims while there is a backlog), not before
    expect(claimer.backlog).toBe(true);
    expect(db.count("jobClaim")).toBe(1);
  });
});

describe("Claimer: the rate limit's next start", () => {
  it("rateWakeInMs follows the last claim's wakeMs on the clock, and clears with a claim that says none", async () => {
    const { db, clock, claimer } = setup();
    expect(claimer.rateWakeInMs).toBeNull();
    db.answer("jobClaim", claimed([], { wakeMs: 300 }), claimed(jobs(1)));
    await claimer.request("notify");
    expect(claimer.rateWakeInMs).toBe(300);
    await clock.advance(100);
    expect(claimer.rateWakeInMs).toBe(200);
    await clock.advance(200); // the wake-up claims: its answer says nothing of a limit
    expect(db.count("jobClaim")).toBe(2);
    expect(claimer.rateWakeInMs).toBeNull();
  });
});

