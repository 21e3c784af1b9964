import type { Clock } from "../shared/clock.ts";
import type { Logger } from "../shared/logger.ts";
import { within } from "../shared/timing.ts";
import { CANCEL_TIMEOUT_MS } from "../db/statements.ts";
import type { SlotWaiters } from "./slots.ts";

/**
 * How long stop() waits on the database for a claim in flight, and then for
 * its last writes together (finished jobs, unregistering), ending what is still
 * in flight included. If the database is gone, what is left is the reaper's:
 * the worker row goes stale and its jobs come back.
 */
export const STOP_IO_TIMEOUT_MS = 5000;

/**
 * The last part of the last writes' budget, kept to end what is still in
 * flight then: the statements are cancelled (each cancel request given up
 * after this long), and the listener's connection closed.
 */
export const STOP_CANCEL_MS = CANCEL_TIMEOUT_MS;

/** A second stop with no grace (a second Ctrl-C): ends the first one's waits, whenever it comes. */
export class Cut {
  #done = false;
  #resolve!: () => void;
  /** Resolves once the stop is cut short. */
  readonly promise = new Promise<void>((resolve) => (this.#resolve = resolve));

  get done(): boolean {
    return this.#done;
  }

  cut(): void {
    this.#done = true;
    this.#resolve();
  }
}

/** What a stop reads and ends of a worker's parts (./parts.ts). */
export interface StopParts {
  runner: { closed: boolean; readonly size: number; releaseWaiting(): void; releaseAll(reason: string): void };
  claimer: { settled(): Promise<unknown>; cancel(): void };
  /** The loops that run while the worker runs (the claimer's sweep among them). */
  maintenance: readonly { stop(): Promise<void> }[];
  progress: { flush(): Promise<void>; stop(): void };
  logs: { flush(): Promise<void>; stop(): void };
  finisher: { flush(): Promise<void>; abandon(): void };
  statsWriter: { flush(): Promise<unknown> } | null;
  lease: { stop(): Promise<void>; unregister(): Promise<unknown> };
  listener: { stop(timeoutMs: number): Promise<void> };
  announceRoster(): Promise<void>;
  /** The worker's statements in flight on its pool (src/db/statements.ts). */
  statements: { close(): void; cancelAll(timeoutMs: number): Promise<void> };
  sql: { end(options: { timeout: number }): Promise<void> };
  /** Whether the pool is the worker's own, to end. */
  owned: boolean;
}

export interface StopContext {
  clock: Clock;
  logger: Logger;
  fail: (during: string) => (error: unknown) => void;
  /** How long running jobs may take to finish. */
  graceMs: number;
  cut: Cut;
  slots: SlotWaiters;
  /** The worker listens, so the others draw it for notifications: told when it leaves. */
  announces: boolean;
  /** Called once the last writes are done: claims are closed for good. */
  onStopped(): void;
}

/**
 * Stops a running worker's parts: no more claims or maintenance; running jobs
 * get up to the grace period (heartbeats and the listener go on meanwhile),
 * then what still runs is given back; the last writes get one budget; the
 * worker's row goes. A cut (a second stop with no grace) ends the waits for the
 * claim out and for running jobs at once. What the stop no longer waits for
 * holds nothing once it resolves: the claim out and every statement still in
 * flight when the budget ends are cancelled, the worker sends no statement
 * after, its pool (if its own) is ended, and no timer of the stop is left.
 */
export async function stopParts(p: StopParts, c: StopContext): Promise<void> {
  const { runner } = p;
  const { clock, cut } = c;
  runner.closed = true;
  runner.releaseWaiting();
  // Claiming, the sweep and the maintenance loops end here (a pass under way finishes).
  const looping = Promise.all(p.maintenance.map((service) => service.stop()));
  // A claim out now comes back to claims closed: its jobs are given back. It is waited for,
  // then cancelled, so that the connection it holds is free when the pool ends.
  if (!(await within(p.claimer.settled(), STOP_IO_TIMEOUT_MS, clock, cut.promise))) p.claimer.cancel();
  if (runner.size > 0 && !cut.done) {
    c.logger.info(`stopping: waiting up to ${c.graceMs} ms for ${runner.size} running job(s)`);
    await c.slots.waitFor(() => runner.size === 0, c.graceMs, cut.promise);
  }
  runner.releaseAll("worker stopping");
  // One budget for the last writes, so a database that is gone cannot hold stop() up. The
  // writes may take all of it but its last STOP_CANCEL_MS, kept to end what is still in flight.
  const ioDeadline = clock.now() + STOP_IO_TIMEOUT_MS;
  const left = () => Math.max(0, ioDeadline - clock.now());
  const forWrites = () => Math.max(0, left() - STOP_CANCEL_MS);
  // The claim cancelled above ends within a round trip (had it landed first, its jobs are
  // given back, and written with the others below).
  await within(p.claimer.settled(), forWrites(), clock);
  await within(p.progress.flush(), forWrites(), clock);
  p.progress.stop();
  await within(p.logs.flush(), forWrites(), clock);
  p.logs.stop();
  if (!(await within(p.finisher.flush(), forWrites(), clock))) {
    c.logger.warn("could not write the last finished jobs; the reaper will put them back");
    p.finisher.abandon();
  }
  // The counts of this worker's last attempts (a failure only loses figures).
  if (p.statsWriter) await within(p.statsWriter.flush().then(() => {}, c.fail("writing per-minute figures")), forWrites(), clock);
  c.onStopped();
  await within(Promise.all([p.lease.stop(), looping]), forWrites(), clock);
  // Still listening: a notification drawn for this worker until the others have read the
  // roster without it is passed on (claims are closed).
  if (!(await within(p.lease.unregister().then(() => {}, c.fail("unregistering")), forWrites(), clock))) {
    c.logger.warn("could not remove this worker's row; the reaper will");
  } else if (c.announces) {
    // The others stop drawing this worker for notifications.
    await within(p.announceRoster(), forWrites(), clock);
  }
  await closeDb(p, left(), clock);
}

/**
 * Ends what a worker holds of the database within ms: it sends no more
 * statements; those still in flight (a write waiting on a lock, on a hung
 * backend, or past a network that went silent) are cancelled, and the
 * listener's connection closed; then its pool, if its own, is ended, with what
 * is left of ms to close its connections cleanly. (A pool the caller gave is
 * the caller's to end.) Whatever was not written is the reaper's.
 */
export async function closeDb(p: Pick<StopParts, "listener" | "statements" | "sql" | "owned">, ms: number, clock: Clock): Promise<void> {
  const deadline = clock.now() + ms;
  const left = () => Math.max(0, deadline - clock.now());
  const ending = Math.min(left(), STOP_CANCEL_MS);
  p.statements.close();
  // (the listener has nothing in flight: the wait is for its connection to close cleanly)
  await within(Promise.all([p.listener.stop(ending), p.statements.cancelAll(ending)]), left(), clock);
  if (p.owned) await within(p.sql.end({ timeout: left() / 1000 }), left(), clock);
}
