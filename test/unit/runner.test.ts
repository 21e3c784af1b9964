import { afterEach, describe, expect, it, vi } from "vitest";
import { JobCancelledError, JobReleasedError, JobSnooze, JobTimeoutError, PermanentError } from "../../src/shared/errors.ts";
import type { ResolvedTask, TaskSettings } from "../../src/shared/task.ts";
import type { ClaimedJob } from "../../src/shared/types.ts";
import type { JobContext } from "../../src/worker/context.ts";
import type { FinishBatcher, FinishResult, Outcome } from "../../src/worker/finisher.ts";
import type { ProgressWriter } from "../../src/worker/progress.ts";
import { LogWriter } from "../../src/worker/logs.ts";
import { JobRunner, type JobRunnerDeps } from "../../src/worker/runner.ts";
import { FakeClock } from "../support/fake-clock.ts";
import { type Deferred, deferred } from "../support/fake-db.ts";
import { job, jobs, recordingEvents, recordingLogger, WORKER_ID } from "./helpers.ts";

const STATUS_AFTER: Record<Outcome["kind"], FinishResult["status"]> = {
  completed: "completed", retry: "queued", failed: "failed", cancelled: "cancelled", released: "queued", snoozed: "queued",
};

/** The finish batcher's add(): every outcome recorded; its write lands at once, or when the test says (auto = false). */
function fakeFinisher() {
  const f = {
    auto: true,
    outcomes: [] as Outcome[],
    writes: [] as Deferred<FinishResult>[],
    add(outcome: Outcome, done: (r: FinishResult) => void): void {
      f.outcomes.push(outcome);
      const write = deferred<FinishResult>();
      f.writes.push(write);
      void write.promise.then(done);
      if (f.auto) write.resolve({ applied: true, status: STATUS_AFTER[outcome.kind] });
    },
    /** Lands every write not landed yet. */
    landAll() {
      f.outcomes.forEach((o, i) => !f.writes[i]!.settled && f.writes[i]!.resolve({ applied: true, status: STATUS_AFTER[o.kind] }));
    },
  };
  return f;
}

/** The progress writer: the starts of jobs claimed ahead, and the jobs it was told to forget. */
function fakeProgress() {
  const p = {
    started: [] as [string, number, number][],
    forgotten: [] as string[],
    writer: {
      set() {},
      started: (id: string, attempt: number, startedMs: number) => void p.started.push([id, attempt, startedMs]),
      forget: (id: string) => void p.forgotten.push(id),
    } satisfies Pick<ProgressWriter, "set" | "started" | "forget">,
  };
  return p;
}

interface Run {
  job: ClaimedJob;
  ctx: JobContext;
  done: Deferred<unknown>;
}

function setup(over: { concurrency?: number; settings?: TaskSettings; deps?: Partial<JobRunnerDeps> } = {}) {
  const clock = new FakeClock();
  const rec = recordingEvents();
  const finisher = fakeFinisher();
  const progress = fakeProgress();
  const runs: Run[] = [];
  const task: ResolvedTask = {
    name: "work",
    settings: over.settings ?? {},
    handler: (_payload, ctx) => {
      const done = deferred<unknown>();
      runs.push({ job: ctx.job, ctx, done });
      return done.promise;
    },
  };
  const stats = { completed: 0, failed: 0, retried: 0, cancelled: 0, released: 0, snoozed: 0 };
  const slotsFreed: number[] = [];
  const written: [Outcome, FinishResult][] = [];
  const runner = new JobRunner({
    workerId: WORKER_ID, concurrency: over.concurrency ?? 2, tasks: new Map([["work", task]]), logger: recordingLogger(),
    events: rec.events, stats, clock,
    finisher: finisher as unknown as FinishBatcher,
    progress: progress.writer as unknown as ProgressWriter,
    logs: new LogWriter({ logAppend: async () => 0 }, 1000, 1000, 65_536, (error) => { throw error; }),
    parents: async () => [],
    onSlotFree: () => void slotsFreed.push(runner.size),
    onWritten: (outcome, result) => void written.push([outcome, result]),
    ...over.deps,
  });
  /** The latest run of a job. */
  const runOf = (id: string | number) => runs.filter((r) => r.job.id === String(id)).at(-1)!;
  const started = () => runs.map((r) => r.job.id);
  return { clock, rec, finisher, progress, runs, runOf, started, stats, slotsFreed, written, runner };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("JobRunner.accept", () => {
  it("starts jobs waiting for a slot in the order of the worker's queues, then in claim order", async () => {
    const { clock, runner, runOf, started } = setup({ concurrency: 1, deps: { queues: ["hi", "lo"] } });
    runner.accept([job(1, { queue: "lo" }), job(2, { queue: "lo" }), job(3, { queue: "lo" })]);
    // a job of the earlier queue, claimed behind the later queue's backlog
    runner.accept([job(4, { queue: "hi" }), job(5, { queue: "lo" }), job(6, { queue: "hi" })]);
    expect(started()).toEqual(["1"]);
    for (const id of [1, 4, 6, 2, 3]) {
      runOf(id).done.resolve(undefined);
      await clock.flush();
    }
    expect(started()).toEqual(["1", "4", "6", "2", "3", "5"]);
    expect(runner.waiting.size).toBe(0);
  });

  it("starts up to concurrency and keeps the rest waiting, in claim order", async () => {
    const { clock, rec, runner, runOf, started } = setup({ concurrency: 2 });
    runner.accept(jobs(1, 2, 3, 4));
    expect(started()).toEqual(["1", "2"]);
    expect([...runner.active.keys()]).toEqual(["1", "2"]);
    expect([...runner.waiting.keys()]).toEqual(["3", "4"]);
    expect(runner.waiting.get("3")!.since).toBe(clock.now());
    expect(rec.of("job:started").map((e) => e.job.id)).toEqual(["1", "2"]);
    runOf(2).done.resolve(undefined);
    await clock.flush();
    expect(started()).toEqual(["1", "2", "3"]);
    expect([...runner.waiting.keys()]).toEqual(["4"]);
  });

  it("does not run a job twice when it is claimed again while held", async () => {
    const { clock, finisher, runner, runOf, started } = setup();
    finisher.auto = false;
    runner.accept(jobs(1));
    runner.accept(jobs(1));
    expect(started()).toEqual(["1"]);
    expect(runner.size).toBe(1);
    expect(runner.waiting.size).toBe(0);
    runOf(1).done.resolve("ok");
    await clock.flush();
    // ended, its write not landed yet: still held
    runner.accept(jobs(1));
    expect(started()).toEqual(["1"]);
    finisher.landAll();
    await clock.flush();
    runner.accept([job(1, { attempt: 2 })]);
    expect(started()).toEqual(["1", "1"]);
  });

  it("holds() a job while it waits, runs, and until its end is written", async () => {
    const { clock, finisher, runner, runOf } = setup({ concurrency: 1 });
    finisher.auto = false;
    expect(runner.holds("1")).toBe(false);
    runner.accept(jobs(1, 2));
    expect([runner.holds("1"), runner.holds("2")]).toEqual([true, true]);
    runOf(1).done.resolve(undefined);
    await clock.flush();
    expect(runner.active.has("1")).toBe(false);
    expect(runner.holds("1")).toBe(true);
    finisher.landAll();
    await clock.flush();
    expect(runner.holds("1")).toBe(false);
    expect(runner.holds("2")).toBe(true);
  });
});

describe("JobRunner: how an attempt ends", () => {
  it("completed: the result stored, the slot freed, and job:completed once the write lands", async () => {
    const { clock, rec, finisher, runner, runOf, stats, slotsFreed, written } = setup();
    finisher.auto = false;
    runner.accept(jobs(1));
    runOf(1).done.resolve({ sent: 3, to: ["a", "b"] });
    await clock.flush();
    const outcome = { kind: "completed", id: "1", attempt: 1, result: { sent: 3, to: ["a", "b"] } };
    expect(finisher.outcomes).toEqual([outcome]);
    expect(slotsFreed).toEqual([0]);
    expect(rec.of("job:completed")).toEqual([]);
    finisher.landAll();
    await clock.flush();
    expect(rec.of("job:completed")).toEqual([{ workerId: WORKER_ID, job: job(1), result: outcome.result }]);
    expect(stats.completed).toBe(1);
    expect(written).toEqual([[outcome, { applied: true, status: "completed" }]]);
  });

  it("ctx's functions work taken apart from it, and stop once the attempt has ended", async () => {
    const set: [string, number, number][] = [];
    const lines: unknown[][] = [];
    const { clock, runner, runOf, progress } = setup({
      deps: {
        logs: { add: (...a: unknown[]) => void lines.push(a), whenWritten: (_id: string, fn: () => void) => fn() } as unknown as LogWriter,
        parents: async (id) => [{ id: `parent-of-${id}`, task: "work", status: "completed", result: 1 }],
      },
    });
    (progress.writer as { set: (id: string, attempt: number, percent: number) => void }).set = (id, attempt, percent) =>
      void set.push([id, attempt, percent]);
    runner.accept(jobs(1));
    const { progress: report, log, parents, signal, job: j, workerId } = runOf(1).ctx;
    expect([j.id, workerId, signal.aborted]).toEqual(["1", WORKER_ID, false]);
    // a copy of ctx (a helper given { ...ctx, more }) has them too
    const copy = { ...runOf(1).ctx, more: true };
    expect([typeof copy.progress, typeof copy.log, typeof copy.parents, copy.signal]).toEqual(["function", "function", "function", signal]);
    report(41.6);
    log("hello", { a: 1 });
    log.warn("careful");
    expect(await parents()).toEqual([{ id: "parent-of-1", task: "work", status: "completed", result: 1 }]);
    expect(() => report(Number.NaN)).toThrow(/progress must be a number/);
    runOf(1).done.resolve(undefined);
    await clock.flush();
    report(90);
    log("too late");
    expect(set).toEqual([["1", 1, 42]]);
    expect(lines).toEqual([["1", 1, "info", "hello", { a: 1 }], ["1", 1, "warn", "careful", undefined]]);
  });

  it("ctx's members are its own: a Proxy of it reads them, and a middleware may replace its functions", async () => {
    const { runner, runOf } = setup();
    runner.accept(jobs(1));
    const ctx = runOf(1).ctx;
    const proxied = new Proxy(ctx, {});
    expect([proxied.signal, proxied.job, typeof proxied.log.warn]).toEqual([ctx.signal, ctx.job, "function"]);
    expect(Object.keys(ctx).sort()).toEqual(["job", "log", "logger", "parents", "progress", "signal", "workerId"]);
    // a copy carries what a handler uses, and the signal as it was when copied
    const copy = { ...ctx };
    expect(Object.keys(copy).sort()).toEqual(Object.keys(ctx).sort());
    expect(copy.signal).toBe(ctx.signal);
    const reported: number[] = [];
    ctx.progress = (percent) => void reported.push(percent);
    ctx.progress(5);
    expect(reported).toEqual([5]);
    // a Proxy that hides ctx's own members from its getter: a clear error, not a TypeError from inside
    const hiding = new Proxy(ctx, { get: (t, key, receiver) => (typeof key === "symbol" ? undefined : Reflect.get(t, key, receiver)) });
    expect(() => hiding.signal).toThrow(expect.objectContaining({ code: "INVALID_INPUT", message: expect.stringMatching(/not the handler's ctx/) }));
  });

  it("makes an attempt's AbortController only when its handler reads ctx.signal", async () => {
    const { runner, runOf } = setup();
    runner.accept(jobs(1, 2));
    expect(runner.active.get("1")!.controller).toBeUndefined();
    const signal = runOf(2).ctx.signal;
    expect(runner.active.get("2")!.controller?.signal).toBe(signal);
    expect(runner.active.get("1")!.controller).toBeUndefined();
  });

  it("a handler that throws at once fails after accept() returns, and then the next waiting job starts", async () => {
    const calls: string[] = [];
    const throwing: ResolvedTask = {
      name: "work", settings: {}, handler: (_payload, ctx) => {
        calls.push(ctx.job.id);
        throw new PermanentError(`no ${ctx.job.id}`);
      },
    };
    const { clock, finisher, runner } = setup({ concurrency: 1, deps: { tasks: new Map([["work", throwing]]) } });
    runner.accept(jobs(1, 2, 3));
    // nothing ended inside accept(): one started, two wait
    expect([calls, finisher.outcomes, runner.waiting.size]).toEqual([["1"], [], 2]);
    await clock.flush();
    expect(calls).toEqual(["1", "2", "3"]);
    expect(finisher.outcomes.map((o) => [o.id, o.kind, "error" in o && o.error.message])).toEqual([
      ["1", "failed", "no 1"], ["2", "failed", "no 2"], ["3", "failed", "no 3"],
    ]);
  });

  it("a result that cannot be stored as JSON fails the job for good", async () => {
    const { clock, finisher, runner, runOf } = setup();
    runner.accept(jobs(1));
    runOf(1).done.resolve({ at: new Date(0) });
    await clock.flush();
    expect(finisher.outcomes.map((o) => [o.kind, "error" in o && o.error.name])).toEqual([["failed", "PermanentError"]]);
  });

  it("an error with attempts left: retry, after the backoff, with the error recorded", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0.5);
    const { clock, rec, finisher, runner, runOf } = setup({ deps: { backoff: { baseMs: 100 } } });
    runner.accept([job(1, { attempt: 2 })]);
    runOf(1).done.reject(new TypeError("fetch failed"));
    await clock.flush();
    // nominal 100 * 2^(2-1) = 200: half of it, plus half of the other half
    expect(finisher.outcomes).toEqual([
      { kind: "retry", id: "1", attempt: 2, delayMs: 150, error: expect.objectContaining({ attempt: 2, name: "TypeError", message: "fetch failed", worker: WORKER_ID }) },
    ]);
    expect(rec.of("job:retried").map((e) => e.delayMs)).toEqual([150]);
  });

  it("the task's backoff wins over the worker's", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0);
    const { clock, finisher, runner, runOf } = setup({ settings: { backoff: { baseMs: 4000 } }, deps: { backoff: { baseMs: 100 } } });
    runner.accept(jobs(1));
    runOf(1).done.reject(new Error("no"));
    await clock.flush();
    expect(finisher.outcomes.map((o) => o.kind === "retry" && o.delayMs)).toEqual([2000]);
  });

  it("an error on the last attempt: failed", async () => {
    const { clock, rec, finisher, runner, runOf } = setup();
    runner.accept([job(1, { attempt: 3, maxAttempts: 3 })]);
    runOf(1).done.reject(new Error("still broken"));
    await clock.flush();
    expect(finisher.outcomes).toEqual([{ kind: "failed", id: "1", attempt: 3, error: expect.objectContaining({ name: "Error", message: "still broken" }) }]);
    expect(rec.of("job:failed").map((e) => e.error.message)).toEqual(["still broken"]);
  });

  it("PermanentError: failed at once, attempts left or not", async () => {
    const { clock, finisher, runner, runOf } = setup();
    runner.accept(jobs(1));
    runOf(1).done.reject(new PermanentError("no such user"));
    await clock.flush();
    expect(finisher.outcomes).toEqual([{ kind: "failed", id: "1", attempt: 1, error: expect.objectContaining({ name: "PermanentError", message: "no such user" }) }]);
  });

  it("JobSnooze: snoozed for its delay, with no error", async () => {
    const { clock, rec, finisher, runner, runOf } = setup();
    runner.accept(jobs(1));
    runOf(1).done.reject(new JobSnooze(5000));
    await clock.flush();
    expect(finisher.outcomes).toEqual([{ kind: "snoozed", id: "1", attempt: 1, delayMs: 5000 }]);
    expect(rec.of("job:snoozed").map((e) => e.delayMs)).toEqual([5000]);
  });
});

describe("JobRunner: timeouts, on the injected clock", () => {
  it("a job past its timeoutMs is aborted with JobTimeoutError and retried; its late end is ignored", async () => {
    const { clock, finisher, runner, runOf, slotsFreed } = setup();
    runner.accept([job(1, { timeoutMs: 1000 })]);
    const { ctx, done } = runOf(1);
    await clock.advance(999);
    expect(finisher.outcomes).toEqual([]);
    await clock.advance(1);
    expect(finisher.outcomes).toEqual([
      { kind: "retry", id: "1", attempt: 1, delayMs: expect.any(Number), error: expect.objectContaining({ name: "JobTimeoutError", message: "job timed out after 1000 ms" }) },
    ]);
    expect(ctx.signal.aborted).toBe(true);
    expect(ctx.signal.reason).toBeInstanceOf(JobTimeoutError);
    expect(runner.size).toBe(0);
    expect(slotsFreed).toEqual([0]);
    done.resolve("too late");
    await clock.flush();
    expect(finisher.outcomes).toHaveLength(1);
  });

  it("a timeout on the last attempt: failed", async () => {
    const { clock, finisher, runner } = setup();
    runner.accept([job(1, { timeoutMs: 1000, attempt: 3, maxAttempts: 3 })]);
    await clock.advance(1000);
    expect(finisher.outcomes.map((o) => [o.kind, "error" in o && o.error.name])).toEqual([["failed", "JobTimeoutError"]]);
  });

  it("takes the job's timeout, else the task's, else the worker's; none sets no timer", async () => {
    const both = setup({ settings: { timeoutMs: 2000 }, deps: { timeoutMs: 3000 } });
    both.runner.accept([job(1, { timeoutMs: 1000 }), job(2)]);
    expect(both.clock.dueTimes()).toEqual([both.clock.now() + 1000, both.clock.now() + 2000]);
    const worker = setup({ deps: { timeoutMs: 3000 } });
    worker.runner.accept(jobs(1));
    expect(worker.clock.dueTimes()).toEqual([worker.clock.now() + 3000]);
    const none = setup();
    none.runner.accept(jobs(1));
    expect(none.clock.pending()).toBe(0);
  });

  it("a job that ends in time clears its timer", async () => {
    const { clock, finisher, runner, runOf } = setup();
    runner.accept([job(1, { timeoutMs: 1000 })]);
    runOf(1).done.resolve(undefined);
    await clock.flush();
    expect(clock.pending()).toBe(0);
    await clock.advance(5000);
    expect(finisher.outcomes.map((o) => o.kind)).toEqual(["completed"]);
  });
});

describe("JobRunner.cancel", () => {
  it("a waiting job is given back unstarted", async () => {
    const { clock, rec, finisher, runner, started } = setup({ concurrency: 1 });
    runner.accept(jobs(1, 2));
    runner.cancel("2");
    await clock.flush();
    expect(finisher.outcomes).toEqual([{ kind: "released", id: "2", attempt: 1 }]);
    expect(runner.waiting.size).toBe(0);
    expect(started()).toEqual(["1"]);
    expect(rec.of("job:released").map((e) => e.job.id)).toEqual(["2"]);
  });

  it("a running job is aborted with JobCancelledError and ends cancelled; the next waiting one starts", async () => {
    const { clock, finisher, runner, runOf, started } = setup({ concurrency: 1 });
    runner.accept(jobs(1, 2));
    const { ctx } = runOf(1);
    runner.cancel("1");
    expect(ctx.signal.reason).toBeInstanceOf(JobCancelledError);
    expect(finisher.outcomes).toEqual([{ kind: "cancelled", id: "1", attempt: 1, error: expect.objectContaining({ name: "JobCancelledError" }) }]);
    expect(started()).toEqual(["1", "2"]);
    // the handler giving up on its abort changes nothing
    runOf(1).done.reject(ctx.signal.reason);
    await clock.flush();
    expect(finisher.outcomes).toHaveLength(1);
  });

  it("a job it does not hold is left alone", () => {
    const { finisher, runner } = setup();
    runner.accept(jobs(1));
    runner.cancel("99");
    expect(finisher.outcomes).toEqual([]);
    expect(runner.size).toBe(1);
  });
});

describe("JobRunner: giving jobs back", () => {
  it("releaseAll gives back the waiting jobs, then aborts the running ones with JobReleasedError", async () => {
    const { clock, finisher, runner, runOf, started } = setup({ concurrency: 2 });
    runner.accept(jobs(1, 2, 3, 4));
    const signal = runOf(1).ctx.signal;
    runner.releaseAll("worker stopping");
    expect(finisher.outcomes).toEqual(["3", "4", "1", "2"].map((id) => ({ kind: "released", id, attempt: 1 })));
    expect(signal.reason).toBeInstanceOf(JobReleasedError);
    expect((signal.reason as Error).message).toBe("job released by the worker: worker stopping");
    expect(started()).toEqual(["1", "2"]);
    expect([runner.size, runner.waiting.size]).toEqual([0, 0]);
    runOf(2).done.resolve(undefined);
    await clock.flush();
    expect(finisher.outcomes).toHaveLength(4);
  });

  it("releaseWaitingOlderThan gives back the jobs that waited that long, and keeps the younger", async () => {
    const { clock, finisher, runner } = setup({ concurrency: 1 });
    runner.accept(jobs(1, 2));
    await clock.advance(1);
    runner.accept(jobs(3));
    await clock.advance(4999);
    expect(runner.releaseWaitingOlderThan(5000)).toBe(1);
    expect(finisher.outcomes).toEqual([{ kind: "released", id: "2", attempt: 1 }]);
    expect([...runner.waiting.keys()]).toEqual(["3"]);
  });

  it("giveBack releases the jobs of a claim not taken in, but none it holds", () => {
    const { finisher, runner } = setup();
    runner.accept(jobs(1));
    runner.giveBack([job(1), job(2, { attempt: 4 })]);
    expect(finisher.outcomes).toEqual([{ kind: "released", id: "2", attempt: 4 }]);
    expect(runner.holds("2")).toBe(true);
  });

  it("releaseStray writes a release, guarded by the attempt, holding the job until written", async () => {
    const { clock, finisher, runner } = setup();
    finisher.auto = false;
    runner.releaseStray("9", 4);
    runner.releaseStray("9", 4);
    expect(finisher.outcomes).toEqual([{ kind: "released", id: "9", attempt: 4 }]);
    expect(runner.holds("9")).toBe(true);
    finisher.landAll();
    await clock.flush();
    expect(runner.holds("9")).toBe(false);
  });
});

describe("JobRunner: claimed ahead", () => {
  it("a job claimed ahead has its start written, on the database's clock, and carried in its end", async () => {
    let perf = 1000;
    vi.spyOn(performance, "now").mockImplementation(() => perf);
    const { clock, finisher, progress, runner, runOf } = setup({ concurrency: 1 });
    const offset = 1_709_280_000_000;
    runner.accept(jobs(1, 2), new Map([["2", offset]]));
    expect(progress.started).toEqual([]);
    perf = 1500;
    runOf(1).done.resolve(undefined);
    await clock.flush();
    expect(progress.started).toEqual([["2", 1, offset + 1500]]);
    runOf(2).done.resolve(undefined);
    await clock.flush();
    expect(finisher.outcomes).toEqual([
      { kind: "completed", id: "1", attempt: 1, result: null },
      { kind: "completed", id: "2", attempt: 1, result: null, startedMs: offset + 1500 },
    ]);
    expect(progress.forgotten).toEqual(["1", "2"]);
  });
});

describe("JobRunner.prefetch", () => {
  async function runFor(ms: number[], concurrency = 10) {
    let perf = 0;
    vi.spyOn(performance, "now").mockImplementation(() => perf);
    const s = setup({ concurrency });
    const seen: number[] = [s.runner.prefetch()];
    for (const [i, d] of ms.entries()) {
      s.runner.accept(jobs(i + 1));
      perf += d;
      s.runOf(i + 1).done.resolve(undefined);
      await s.clock.flush();
      seen.push(s.runner.prefetch());
    }
    return seen;
  }

  it("is 0 before the first run, then about 50 ms of work at the recent run time", async () => {
    // 10 slots * 50 ms / 10 ms; then the average moves to 10 * 0.9 + 100 * 0.1 = 19 ms
    expect(await runFor([10, 100])).toEqual([0, 50, 26]);
  });

  it("is bounded by 500", async () => {
    expect(await runFor([1, 0])).toEqual([0, 500, 500]);
  });

  it("is 0 for runs longer than the window across all slots", async () => {
    expect(await runFor([2000], 4)).toEqual([0, 0]);
  });
});
