// How the worker's loops are timed, and bounds on how long it waits for the database.

/**
 * Runs fn every ms (after the previous run ended) while alive() holds; a
 * failure goes to onError and the loop goes on. Pending timers are kept in
 * `timers` so that stopping can clear them.
 */
export function loop(
  ms: number,
  fn: () => Promise<unknown>,
  alive: () => boolean,
  timers: Set<ReturnType<typeof setTimeout>>,
  onError: (error: unknown) => void,
): void {
  const tick = () => {
    const t = setTimeout(async () => {
      timers.delete(t);
      if (!alive()) return;
      await fn().catch(onError);
      if (alive()) tick();
    }, ms);
    timers.add(t);
  };
  tick();
}

/** The promise, or a rejection when it has not settled within ms. */
export function timeLimit<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} had no answer within ${ms} ms`)), ms))),
  ]).finally(() => clearTimeout(timer));
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
