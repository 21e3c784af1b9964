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
 * and the loop goes on.
 */
export class Periodic {
  #timer: Timer | undefined;
  #running = false;
  #pass: Promise<unknown> | undefined;

  constructor(
    private pass: () => Promise<unknown>,
    private intervalMs: number,
    private clock: Clock,
    private onError: (error: unknown) => void,
  ) {}

  get started(): boolean {
    return this.#running;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#schedule();
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#pass;
  }

  #schedule(): void {
    this.#timer = this.clock.setTimeout(async () => {
      this.#timer = undefined;
      if (!this.#running) return;
      this.#pass = this.pass().catch(this.onError);
      await this.#pass;
      this.#pass = undefined;
      if (this.#running) this.#schedule();
    }, this.intervalMs);
  }
}
