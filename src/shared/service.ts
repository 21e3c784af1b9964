import type { Clock, Timer } from "./clock.ts";

/**
 * The contract of pgpulse's background parts (the reaper, the scheduler, the
 * pruner, vacuum, the worker's heartbeat):
 * - `runOnce()` does one pass now and resolves with what it did; tests step a
 *   service with it, without timers.
 * - `start()` runs a pass every interval, each `intervalMs` after the last one
 *   ended (passes never overlap). Starting a started service does nothing.
 * - `stop()` ends the loop and waits for a pass under way. It may be called
 *   twice, or before start.
 */
export interface Service {
  start(): void;
  stop(): Promise<void>;
  runOnce(): Promise<unknown>;
}

/**
 * Runs a pass every intervalMs on a clock. A pass that throws goes to onError
 * and the loop goes on. intervalMs may be a function, read before each wait
 * (a poll that backs off while idle).
 */
export class Periodic {
  #timer: Timer | undefined;
  #running = false;
  #pass: Promise<unknown> | undefined;
  /** Which start() the loop belongs to: a pass of an earlier one never schedules the next. */
  #generation = 0;

  constructor(
    private pass: () => Promise<unknown>,
    private intervalMs: number | (() => number),
    private clock: Clock,
    private onError: (error: unknown) => void,
  ) {}

  get started(): boolean {
    return this.#running;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#schedule(++this.#generation);
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#pass;
  }

  #schedule(generation: number): void {
    this.#timer = this.clock.setTimeout(async () => {
      this.#timer = undefined;
      if (!this.#running || generation !== this.#generation) return;
      // After a stop() and a start(), the old loop's last pass may still be under way: passes never overlap.
      while (this.#pass) await this.#pass;
      if (!this.#running || generation !== this.#generation) return;
      const pass = (this.#pass = this.pass().catch(this.onError));
      await pass;
      if (this.#pass === pass) this.#pass = undefined;
      if (this.#running && generation === this.#generation) this.#schedule(generation);
    }, typeof this.intervalMs === "function" ? this.intervalMs() : this.intervalMs);
  }
}

/**
 * A service whose loop runs runOnce() every intervalMs; a subclass writes
 * runOnce. `skip()` true makes the loop pass over a turn (runOnce called
 * directly still runs).
 */
export abstract class PeriodicService<Result> implements Service {
  #loop: Periodic;

  constructor(loop: { intervalMs: number; clock: Clock; onError: (error: unknown) => void; skip?: () => boolean }) {
    const { skip } = loop;
    this.#loop = new Periodic(() => (skip?.() ? Promise.resolve() : this.runOnce()), loop.intervalMs, loop.clock, loop.onError);
  }

  start(): void {
    this.#loop.start();
  }

  stop(): Promise<void> {
    return this.#loop.stop();
  }

  abstract runOnce(): Promise<Result>;
}
