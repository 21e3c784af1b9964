import type { Clock, Timer } from "../../src/shared/clock.ts";

interface FakeTimer {
  id: number;
  at: number;
  fn: () => void;
}

/** Rounds of the event loop flush() lets pass: each drains every queued microtask, chained ones included. */
const FLUSH_ROUNDS = 5;

/**
 * A Clock for unit tests: time stands still until a test moves it with
 * advance(), which fires the timers that come due, in time order (ties in the
 * order they were set), and lets the async work each one starts run before the
 * next fires. Nothing here touches the wall clock.
 */
export class FakeClock implements Clock {
  #now: number;
  #timers = new Map<number, FakeTimer>();
  #nextId = 1;

  constructor(start = Date.UTC(2024, 0, 1, 12, 0, 0)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  /** Sets the time without firing anything (to go back, or to jump past timers on purpose). */
  set(ms: number): void {
    this.#now = ms;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const id = this.#nextId++;
    this.#timers.set(id, { id, at: this.#now + Math.max(0, ms), fn });
    return id as unknown as Timer;
  }

  clearTimeout(timer: Timer | undefined): void {
    if (timer !== undefined) this.#timers.delete(timer as unknown as number);
  }

  /** How many timers are set and not yet fired or cleared. */
  pending(): number {
    return this.#timers.size;
  }

  /** When the timers set now are due, earliest first. */
  dueTimes(): number[] {
    return [...this.#timers.values()].map((t) => t.at).sort((a, b) => a - b);
  }

  /**
   * Moves time forward by ms, firing every timer due by then in time order,
   * each at its own time, with microtasks flushed after each one (so a timer
   * set by a timer's async work fires too when it is due within the window).
   */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    await this.flush();
    for (;;) {
      let next: FakeTimer | undefined;
      for (const t of this.#timers.values()) {
        if (t.at <= target && (!next || t.at < next.at || (t.at === next.at && t.id < next.id))) next = t;
      }
      if (!next) break;
      this.#timers.delete(next.id);
      this.#now = Math.max(this.#now, next.at);
      next.fn();
      await this.flush();
    }
    this.#now = target;
    await this.flush();
  }

  /** Moves time to an absolute point, as advance() does. */
  advanceTo(at: number): Promise<void> {
    return this.advance(Math.max(0, at - this.#now));
  }

  /** Lets pending microtasks, and whatever they chain, run. Moves no time. */
  async flush(): Promise<void> {
    for (let i = 0; i < FLUSH_ROUNDS; i++) await new Promise<void>((resolve) => setImmediate(resolve));
  }
}
