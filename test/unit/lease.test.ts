import { describe, expect, it } from "vitest";
import type { Beat } from "../../src/db/lease.ts";
import type { ClaimedJob } from "../../src/shared/types.ts";
import { Lease, type LeaseOptions } from "../../src/worker/lease.ts";
import { FakeClock } from "../support/fake-clock.ts";
import { deferred, FakeDb } from "../support/fake-db.ts";
import { jobs, recordingEvents, recordingLogger, WORKER_ID } from "./helpers.ts";

const DB_NOW = new Date("2024-03-01T10:00:00.000Z");
const HEARTBEAT_MS = 1000;
const STALE_AFTER_MS = 10_000;
/** max(10000 - 2 * 1000, 10000 / 2) */
const MARGIN_MS = 8000;

function setup(over: Partial<LeaseOptions> = {}) {
  const db = new FakeDb();
  const clock = new FakeClock();
  const rec = recordingEvents();
  const logger = recordingLogger();
  const log: string[] = [];
  const runner = {
    size: 0,
    waiting: new Map<string, { job: ClaimedJob; since: number }>(),
    held: new Set<string>(),
    releasedAll: [] as string[],
    cancelled: [] as string[],
    strays: [] as [string, number][],
    holds: (id: string) => runner.held.has(id),
    releaseAll(reason: string) {
      log.push("releaseAll");
      runner.releasedAll.push(reason);
    },
    cancel: (id: string) => void runner.cancelled.push(id),
    releaseStray: (id: string, attempt: number) => void runner.strays.push([id, attempt]),
  };
  const claimer = {
    claiming: false,
    inFlight: Promise.resolve() as Promise<unknown>,
    requests: [] as string[],
    settled: () => claimer.inFlight,
    request(reason: string) {
      log.push(`request:${reason}`);
      claimer.requests.push(reason);
      return Promise.resolve(0);
    },
  };
  const errors: [string, unknown][] = [];
  rec.events.on("worker:lease-lost", () => log.push("lease-lost"));
  const lease = new Lease({
    db, workerId: WORKER_ID, queues: ["default"], tasks: ["work"], concurrency: 4, meta: { host: "h1" }, listening: () => true,
    heartbeatIntervalMs: HEARTBEAT_MS, staleAfterMs: STALE_AFTER_MS, runner, claimer, clock, dbNow: () => DB_NOW,
    logger, events: rec.events, onError: (during, error) => errors.push([during, error]), ...over,
  });
  return { db, clock, rec, logger, log, runner, claimer, errors, lease };
}

const beat = (running: string[] = [], cancel: string[] = []): Beat => ({ running, cancel });

describe("Lease: registering", () => {
  it("registers with the worker's id, queues, tasks, concurrency, meta and dbNow; returns what it recovered", async () => {
    const { db, lease } = setup();
    db.answer("workerRegister", 3);
    expect(await lease.register()).toBe(3);
    expect(db.params("workerRegister")).toEqual([
      { workerId: WORKER_ID, queues: ["default"], tasks: ["work"], concurrency: 4, meta: { host: "h1" }, listening: true, now: DB_NOW },
    ]);
  });

  it("unregisters with its id and dbNow", async () => {
    const { db, lease } = setup();
    await lease.unregister();
    expect(db.calls.workerUnregister).toEqual([[WORKER_ID, DB_NOW]]);
  });

  it("leaseMarginMs = max(staleAfterMs - 2 * heartbeatIntervalMs, staleAfterMs / 2)", () => {
    expect(setup().lease.leaseMarginMs).toBe(MARGIN_MS);
    expect(setup({ staleAfterMs: 30_000, heartbeatIntervalMs: 5000 }).lease.leaseMarginMs).toBe(20_000);
    expect(setup({ staleAfterMs: 10_000, heartbeatIntervalMs: 4000 }).lease.leaseMarginMs).toBe(5000);
  });
});

describe("Lease: a beat", () => {
  it("refreshes with the worker's id and dbNow, and emits worker:heartbeat", async () => {
    const { db, clock, rec, lease } = setup();
    await lease.runOnce();
    expect(db.calls.workerBeat).toEqual([[WORKER_ID, DB_NOW]]);
    expect(rec.emitted).toEqual([{ event: "worker:heartbeat", payload: { workerId: WORKER_ID } }]);
    // its time limit's timer is gone
    expect(clock.pending()).toBe(0);
  });

  it("hands the cancels it carries to runner.cancel", async () => {
    const { db, runner, lease } = setup();
    runner.held = new Set(["7", "8", "9"]);
    db.answer("workerBeat", beat(["7:1", "8:2", "9:1"], ["7", "8"]));
    await lease.runOnce();
    expect(runner.cancelled).toEqual(["7", "8"]);
    expect(runner.strays).toEqual([]);
  });
});

describe("Lease: the lease lost (a beat answers null)", () => {
  it("waits for the claim in flight, releases all, emits, registers again, then asks for a claim", async () => {
    const { db, clock, rec, log, runner, claimer, lease } = setup();
    const claim = deferred();
    claimer.inFlight = claim.promise;
    const registered = deferred<number>();
    db.answer("workerBeat", null);
    db.once("workerRegister", () => (log.push("register"), registered.promise));
    expect(lease.reregistering).toBe(false);
    const pass = lease.runOnce();
    await clock.flush();
    expect(lease.reregistering).toBe(true);
    expect(log).toEqual([]);
    claim.resolve();
    await clock.flush();
    expect(log).toEqual(["releaseAll", "lease-lost", "register"]);
    expect(runner.releasedAll).toEqual(["lease lost"]);
    expect(lease.reregistering).toBe(true);
    registered.resolve(0);
    await pass;
    expect(lease.reregistering).toBe(false);
    expect(log).toEqual(["releaseAll", "lease-lost", "register", "request:registered again"]);
    expect(rec.of("worker:lease-lost")).toEqual([{ workerId: WORKER_ID }]);
    expect(rec.of("worker:heartbeat")).toEqual([]);
    expect(db.params("workerRegister")[0]).toMatchObject({ workerId: WORKER_ID, now: DB_NOW });
  });

  it("a failed re-registration ends reregistering and asks for no claim", async () => {
    const { db, claimer, lease } = setup();
    db.answer("workerBeat", null);
    db.fail("workerRegister", new Error("too many connections"));
    await expect(lease.runOnce()).rejects.toThrow("too many connections");
    expect(lease.reregistering).toBe(false);
    expect(claimer.requests).toEqual([]);
  });
});

describe("Lease: reconciliation", () => {
  it("gives back a stray only once two beats in a row show it, never a job the runner holds", async () => {
    const { db, runner, lease } = setup();
    runner.held = new Set(["1"]);
    db.answer("workerBeat", beat(["1:1", "5:2"]), beat(["1:1", "5:2"]));
    await lease.runOnce();
    expect(runner.strays).toEqual([]);
    await lease.runOnce();
    expect(runner.strays).toEqual([["5", 2]]);
  });

  it("a beat that does not show the job starts the count again", async () => {
    const { db, runner, lease } = setup();
    db.answer("workerBeat", beat(["5:2"]), beat([]), beat(["5:2"]), beat(["5:2"]));
    for (let i = 0; i < 3; i++) await lease.runOnce();
    expect(runner.strays).toEqual([]);
    await lease.runOnce();
    expect(runner.strays).toEqual([["5", 2]]);
  });

  it("the same job at another attempt is not the same stray", async () => {
    const { db, runner, lease } = setup();
    db.answer("workerBeat", beat(["5:2"]), beat(["5:3"]));
    await lease.runOnce();
    await lease.runOnce();
    expect(runner.strays).toEqual([]);
  });

  it("does not reconcile on a beat sent while a claim was in flight, even if the claim is back by its answer", async () => {
    const { db, runner, claimer, lease } = setup();
    db.answer("workerBeat", beat(["5:2"]));
    await lease.runOnce();
    claimer.claiming = true;
    const hung = db.hang("workerBeat");
    const pass = lease.runOnce();
    claimer.claiming = false;
    hung.resolve(beat(["5:2"]));
    await pass;
    expect(runner.strays).toEqual([]);
  });

  it("does not reconcile on a beat during which a claim started", async () => {
    const { db, runner, claimer, lease } = setup();
    db.answer("workerBeat", beat(["5:2"]));
    await lease.runOnce();
    const hung = db.hang("workerBeat");
    const pass = lease.runOnce();
    claimer.claiming = true;
    hung.resolve(beat(["5:2"]));
    await pass;
    expect(runner.strays).toEqual([]);
  });
});

describe("Lease: beats that fail", () => {
  it("a beat with no answer within heartbeatIntervalMs / 2 fails, on the injected clock", async () => {
    const { db, clock, lease } = setup();
    db.hang("workerBeat");
    expect(lease.failingRecently).toBe(false);
    let error: unknown;
    const pass = lease.runOnce().catch((e) => (error = e));
    await clock.advance(HEARTBEAT_MS / 2 - 1);
    expect(error).toBeUndefined();
    await clock.advance(1);
    await pass;
    expect((error as Error).message).toBe(`heartbeat had no answer within ${HEARTBEAT_MS / 2} ms`);
    expect(lease.failingRecently).toBe(true);
    expect(clock.pending()).toBe(0);
  });

  it("calls onRecovered once, with when beats began failing, when a beat gets through again", async () => {
    const recovered: number[] = [];
    const { db, clock, lease } = setup({ onRecovered: (since) => recovered.push(since) });
    db.answer("workerBeat", beat());
    await lease.runOnce();
    expect(recovered).toEqual([]);
    const t0 = clock.now();
    db.fail("workerBeat", Object.assign(new Error("connection reset"), { code: "ECONNRESET" }));
    await expect(lease.runOnce()).rejects.toThrow("connection reset");
    await clock.advance(HEARTBEAT_MS);
    db.fail("workerBeat", Object.assign(new Error("connection refused"), { code: "ECONNREFUSED" }));
    await expect(lease.runOnce()).rejects.toThrow("connection refused");
    expect(recovered).toEqual([]);
    await clock.advance(HEARTBEAT_MS);
    db.answer("workerBeat", beat());
    await lease.runOnce();
    expect(recovered).toEqual([t0]);
    db.answer("workerBeat", beat());
    await lease.runOnce();
    expect(recovered).toEqual([t0]);
  });

  it("does not call onRecovered after a beat that was only slow (the database was reachable)", async () => {
    const recovered: number[] = [];
    const { db, clock, lease } = setup({ onRecovered: (since) => recovered.push(since) });
    db.hang("workerBeat");
    const slow = expect(lease.runOnce()).rejects.toThrow("no answer");
    await clock.advance(HEARTBEAT_MS / 2);
    await slow;
    db.answer("workerBeat", beat());
    await lease.runOnce();
    expect(recovered).toEqual([]);
  });

  it("failingRecently lasts staleAfterMs from the failure", async () => {
    const { db, clock, lease } = setup();
    db.fail("workerBeat", new Error("connection reset"));
    await expect(lease.runOnce()).rejects.toThrow("connection reset");
    await clock.advance(STALE_AFTER_MS - 1);
    expect(lease.failingRecently).toBe(true);
    await clock.advance(1);
    expect(lease.failingRecently).toBe(false);
  });

  it("releases every job ('lease expired') once no beat has landed for over leaseMarginMs", async () => {
    const { db, clock, logger, runner, lease } = setup();
    const t0 = clock.now();
    runner.size = 2;
    clock.set(t0 + MARGIN_MS - HEARTBEAT_MS / 2 + 100);
    db.hang("workerBeat");
    const pass = lease.runOnce().catch(() => {});
    await clock.advance(HEARTBEAT_MS / 2);
    await pass;
    expect(clock.now() - t0).toBe(MARGIN_MS + 100);
    expect(runner.releasedAll).toEqual(["lease expired"]);
    expect(logger.lines.filter((l) => l.level === "warn").map((l) => l.message)).toEqual([
      `no heartbeat has reached the database for ${MARGIN_MS + 100} ms; giving up the running jobs, which other workers may take`,
    ]);
  });

  it("is in doubt, and so closes claims, once a beat failed and none has landed for over leaseMarginMs; a beat that lands ends it and asks for a claim", async () => {
    let sure = 0;
    const { db, clock, claimer, lease } = setup({ onSure: () => void sure++ });
    const t0 = clock.now();
    clock.set(t0 + MARGIN_MS + 1);
    // silence alone (a beat not yet due) is no doubt
    expect(lease.inDoubt).toBe(false);
    db.fail("workerBeat", new Error("connection reset"));
    await expect(lease.runOnce()).rejects.toThrow();
    expect(lease.inDoubt).toBe(true);
    expect(claimer.requests).toEqual([]);
    db.answer("workerBeat", beat());
    await lease.runOnce();
    expect(lease.inDoubt).toBe(false);
    expect(claimer.requests).toEqual(["heartbeat back"]);
    expect(sure).toBe(1);
    // (a beat that lands while the lease is sure asks for nothing)
    db.answer("workerBeat", beat());
    await lease.runOnce();
    expect(claimer.requests).toEqual(["heartbeat back"]);
  });

  it("a beat whose answer comes after its time limit still ends the doubt, and asks for a claim then", async () => {
    const { db, clock, claimer, lease } = setup();
    const t0 = clock.now();
    clock.set(t0 + MARGIN_MS + 1);
    db.fail("workerBeat", new Error("connection reset"));
    await expect(lease.runOnce()).rejects.toThrow();
    expect(lease.inDoubt).toBe(true);
    const late = db.hang("workerBeat");
    const pass = lease.runOnce().catch(() => {});
    await clock.advance(HEARTBEAT_MS / 2);
    await pass;
    expect(lease.inDoubt).toBe(true);
    expect(claimer.requests).toEqual([]);
    late.resolve(beat());
    await clock.flush();
    expect(lease.inDoubt).toBe(false);
    expect(claimer.requests).toEqual(["heartbeat back"]);
  });

  it("a re-registration after the lease was lost ends the doubt", async () => {
    let sure = 0;
    const { db, clock, claimer, lease } = setup({ onSure: () => void sure++ });
    clock.set(clock.now() + MARGIN_MS + 1);
    db.fail("workerBeat", new Error("connection reset"));
    await expect(lease.runOnce()).rejects.toThrow();
    expect(lease.inDoubt).toBe(true);
    db.answer("workerBeat", null);
    await lease.runOnce();
    expect(lease.inDoubt).toBe(false);
    expect(sure).toBe(1);
    expect(claimer.requests).toEqual(["registered again"]);
  });

  it("is never in doubt while its beats land, even with a margin shorter than the interval", async () => {
    const { db, clock, lease } = setup({ staleAfterMs: 10_000, heartbeatIntervalMs: 8000 });
    expect(lease.leaseMarginMs).toBe(5000);
    for (let i = 1; i <= 3; i++) {
      clock.set(clock.now() + 8000);
      expect(lease.inDoubt).toBe(false);
      db.answer("workerBeat", beat());
      await lease.runOnce();
    }
    expect(lease.inDoubt).toBe(false);
  });

  it("keeps its jobs while the silence is within leaseMarginMs", async () => {
    const { db, clock, runner, lease } = setup();
    runner.size = 2;
    clock.set(clock.now() + MARGIN_MS);
    db.fail("workerBeat", new Error("connection reset"));
    await expect(lease.runOnce()).rejects.toThrow();
    expect(runner.releasedAll).toEqual([]);
  });

  it("counts waiting jobs as held, and releases nothing when it holds nothing", async () => {
    const idle = setup();
    idle.clock.set(idle.clock.now() + MARGIN_MS + 1);
    idle.db.fail("workerBeat", new Error("connection reset"));
    await expect(idle.lease.runOnce()).rejects.toThrow();
    expect(idle.runner.releasedAll).toEqual([]);

    const waiting = setup();
    waiting.runner.waiting.set("3", { job: jobs(3)[0]!, since: 0 });
    waiting.clock.set(waiting.clock.now() + MARGIN_MS + 1);
    waiting.db.fail("workerBeat", new Error("connection reset"));
    await expect(waiting.lease.runOnce()).rejects.toThrow();
    expect(waiting.runner.releasedAll).toEqual(["lease expired"]);
  });

  it("a late answer still refreshes the lease, from when its beat was sent", async () => {
    const { db, clock, runner, lease } = setup();
    const t0 = clock.now();
    runner.size = 1;
    clock.set(t0 + 1000);
    const late = db.hang("workerBeat");
    const pass = lease.runOnce().catch(() => {});
    await clock.advance(HEARTBEAT_MS / 2);
    await pass;
    late.resolve(beat());
    await clock.flush();
    // silent since t0 + 1000, not t0: 7800 ms, within the margin
    clock.set(t0 + MARGIN_MS + 800);
    db.fail("workerBeat", new Error("connection reset"));
    await expect(lease.runOnce()).rejects.toThrow();
    expect(runner.releasedAll).toEqual([]);
  });

  it("a late answer of null refreshes nothing", async () => {
    const { db, clock, runner, lease } = setup();
    const t0 = clock.now();
    runner.size = 1;
    clock.set(t0 + 1000);
    const late = db.hang("workerBeat");
    const pass = lease.runOnce().catch(() => {});
    await clock.advance(HEARTBEAT_MS / 2);
    await pass;
    late.resolve(null);
    await clock.flush();
    clock.set(t0 + MARGIN_MS + 800);
    db.fail("workerBeat", new Error("connection reset"));
    await expect(lease.runOnce()).rejects.toThrow();
    expect(runner.releasedAll).toEqual(["lease expired"]);
  });
});

describe("Lease: the heartbeat loop", () => {
  it("beats every heartbeatIntervalMs; a failed beat goes to onError and the loop goes on", async () => {
    const { db, clock, errors, lease } = setup();
    const error = new Error("connection reset");
    db.fail("workerBeat", error);
    lease.start();
    await clock.advance(HEARTBEAT_MS);
    expect(errors).toEqual([["a background task", error]]);
    await clock.advance(HEARTBEAT_MS);
    expect(db.count("workerBeat")).toBe(2);
    await lease.stop();
    expect(clock.pending()).toBe(0);
  });

  it("start() counts the lease as fresh from then, however long ago it was made", async () => {
    const { db, clock, runner, lease } = setup();
    runner.size = 1;
    clock.set(clock.now() + 10 * MARGIN_MS);
    db.fail("workerBeat", new Error("connection reset"));
    lease.start();
    await clock.advance(HEARTBEAT_MS);
    expect(db.count("workerBeat")).toBe(1);
    expect(runner.releasedAll).toEqual([]);
    await lease.stop();
  });

  it("a beat that hangs ends at its time limit and the next comes heartbeatIntervalMs later", async () => {
    const { db, clock, errors, lease } = setup();
    const t0 = clock.now();
    db.hang("workerBeat");
    lease.start();
    await clock.advance(HEARTBEAT_MS + HEARTBEAT_MS / 2);
    expect(errors).toHaveLength(1);
    expect(clock.dueTimes()).toEqual([t0 + 2 * HEARTBEAT_MS + HEARTBEAT_MS / 2]);
    await lease.stop();
  });
});
