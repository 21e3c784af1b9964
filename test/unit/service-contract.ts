// The loop every maintenance service promises (src/shared/service.ts), checked
// against each service's own wiring (its interval, its onError). Not a test file
// itself: each service's test file calls serviceLoopContract().
import { afterEach, describe, expect, it } from "vitest";
import type { Service } from "../../src/shared/service.ts";
import { FakeClock } from "../support/fake-clock.ts";
import { FakeDb, type FakeOp, type OpResult } from "../support/fake-db.ts";

export interface LoopSetup {
  db: FakeDb;
  clock: FakeClock;
  onError: (error: unknown) => void;
}

export function serviceLoopContract<K extends FakeOp>(spec: {
  intervalMs: number;
  /** The operation each pass starts with. */
  op: K;
  /** An answer to op that ends the pass. */
  idle: OpResult<K>;
  make(setup: LoopSetup): Service;
}): void {
  const I = spec.intervalMs;

  describe("its loop (start/stop)", () => {
    let db: FakeDb;
    let clock: FakeClock;
    let errors: unknown[];
    let service: Service;

    function setup(): void {
      db = new FakeDb().on(spec.op, () => spec.idle);
      clock = new FakeClock();
      errors = [];
      service = spec.make({ db, clock, onError: (error) => errors.push(error) });
    }

    afterEach(async () => {
      await service?.stop();
    });

    it("runs a pass every intervalMs on the clock, the first one interval after start()", async () => {
      setup();
      service.start();
      await clock.advance(I - 1);
      expect(db.count(spec.op)).toBe(0);
      await clock.advance(1);
      expect(db.count(spec.op)).toBe(1);
      await clock.advance(I);
      expect(db.count(spec.op)).toBe(2);
      expect(errors).toEqual([]);
    });

    it("never overlaps passes: a hanging pass holds the next, which comes intervalMs after it ends", async () => {
      setup();
      const hung = db.hang(spec.op);
      service.start();
      await clock.advance(I);
      expect(db.count(spec.op)).toBe(1);
      await clock.advance(I * 10);
      expect(db.count(spec.op)).toBe(1);
      expect(clock.pending()).toBe(0);
      const endedAt = clock.now();
      hung.resolve(spec.idle);
      await clock.flush();
      expect(clock.dueTimes()).toEqual([endedAt + I]);
      await clock.advance(I);
      expect(db.count(spec.op)).toBe(2);
    });

    it("start() on a started service does nothing", async () => {
      setup();
      service.start();
      service.start();
      expect(clock.pending()).toBe(1);
      await clock.advance(I);
      expect(db.count(spec.op)).toBe(1);
    });

    it("stop() before start() and stop() twice are safe, and no pass runs after stop()", async () => {
      setup();
      await service.stop();
      service.start();
      await clock.advance(I);
      expect(db.count(spec.op)).toBe(1);
      await Promise.all([service.stop(), service.stop()]);
      await service.stop();
      expect(clock.pending()).toBe(0);
      await clock.advance(I * 10);
      expect(db.count(spec.op)).toBe(1);
    });

    it("stop() waits for the pass under way, and none follows it", async () => {
      setup();
      const hung = db.hang(spec.op);
      service.start();
      await clock.advance(I);
      let stopped = false;
      const stopping = service.stop().then(() => (stopped = true));
      await clock.flush();
      expect(stopped).toBe(false);
      hung.resolve(spec.idle);
      await stopping;
      expect(stopped).toBe(true);
      expect(clock.pending()).toBe(0);
      await clock.advance(I * 10);
      expect(db.count(spec.op)).toBe(1);
    });

    it("a pass that throws goes to onError and the loop goes on", async () => {
      setup();
      const boom = new Error("database went away");
      db.fail(spec.op, boom);
      service.start();
      await clock.advance(I);
      expect(errors).toEqual([boom]);
      await clock.advance(I);
      expect(db.count(spec.op)).toBe(2);
      expect(errors).toEqual([boom]);
    });
  });
}
