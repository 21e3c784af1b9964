// Bounds on how long pgpulse waits for the database.
import { type Clock, systemClock, type Timer } from "./clock.ts";

/** The promise, or a rejection when it has not settled within ms. */
export function timeLimit<T>(promise: Promise<T>, ms: number, what: string, clock: Clock = systemClock): Promise<T> {
  let timer: Timer | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => (timer = clock.setTimeout(() => reject(new Error(`${what} had no answer within ${ms} ms`)), ms))),
  ]).finally(() => clock.clearTimeout(timer));
}

/** Resolves true when the promise settles within ms, false otherwise. */
export function within(promise: Promise<unknown> | undefined, ms: number): Promise<boolean> {
  if (!promise) return Promise.resolve(true);
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise.then(() => true, () => true),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms))),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Makes fn run one call at a time: a call made while one runs waits for it to
 * end, then runs (a batched writer's flush: each write takes what is pending
 * when it starts).
 */
export function oneAtATime(fn: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  return async () => {
    while (running) await running;
    running = fn().finally(() => (running = undefined));
    return running;
  };
}
