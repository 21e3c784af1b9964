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

/**
 * Resolves true when the promise settles within ms, false otherwise, or false
 * as soon as `until` settles first (a wait cut short). Its timer is cleared
 * whichever comes first, so a wait given up holds nothing.
 */
export function within(promise: Promise<unknown> | undefined, ms: number, clock: Clock = systemClock, until?: Promise<unknown>): Promise<boolean> {
  if (!promise) return Promise.resolve(true);
  let timer: Timer | undefined;
  const waits = [
    promise.then(() => true, () => true),
    new Promise<boolean>((r) => (timer = clock.setTimeout(() => r(false), ms))),
  ];
  if (until) waits.push(until.then(() => false, () => false));
  return Promise.race(waits).finally(() => clock.clearTimeout(timer));
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
