import type { Clock, Timer } from "../shared/clock.ts";

/**
 * Those who wait for a job slot to free: runAvailable's loop, and a graceful
 * stop waiting for its running jobs. Each is woken as slots free, and resolves
 * once its condition holds, its time is up, or its wait is cut short; its timer
 * is cleared whichever comes first.
 */
export class SlotWaiters {
  #waiters = new Set<() => void>();

  constructor(private clock: Clock) {}

  /** A slot freed (or the lease is sure again): whoever waits checks its condition. */
  wake(): void {
    this.#waiters.forEach((check) => check());
  }

  /** Resolves when a slot frees and done() holds, after ms, or when until settles. */
  waitFor(done: () => boolean, ms: number, until?: Promise<unknown>): Promise<void> {
    return new Promise((resolve) => {
      let timer: Timer | undefined = undefined;
      const end = () => {
        this.clock.clearTimeout(timer);
        this.#waiters.delete(check);
        resolve();
      };
      const check = () => {
        if (done()) end();
      };
      timer = this.clock.setTimeout(end, Math.max(0, ms));
      this.#waiters.add(check);
      void until?.then(end, end);
    });
  }
}
