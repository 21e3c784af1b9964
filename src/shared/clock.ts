/** An opaque timer handle from a Clock. */
export type Timer = { readonly __timer: unique symbol } | ReturnType<typeof setTimeout>;

/**
 * Time as pgpulse's loops see it: wall time and timers. The system clock in
 * production; a fake one in unit tests, which moves time by hand.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  setTimeout(fn: () => void, ms: number): Timer;
  clearTimeout(timer: Timer | undefined): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (timer) => clearTimeout(timer as ReturnType<typeof setTimeout> | undefined),
};
