// The statements a worker has in flight, so that its stop can cancel those the
// database still runs when its budget ends, and send nothing after.

/** How long a cancel request may take to reach the database before it is given up. */
export const CANCEL_TIMEOUT_MS = 1000;

/** A postgres.js query, as far as cancelling it goes. */
interface Cancellable {
  cancel?: () => unknown;
  /** postgres.js's own: the function cancel() calls, which returns the cancel request's promise. */
  canceller?: ((query: unknown) => Promise<unknown>) | null;
}

/** What of a postgres.js pool's parsed options (`sql.options`) a cancel request reads. */
export interface CancelOptions {
  connect_timeout?: number | null;
}

/**
 * Asks the database to cancel a statement (postgres.js: a statement not yet
 * sent is dropped), and resolves once the request has ended: answered,
 * refused, or given up after timeoutMs. Never rejects. The statement then
 * fails with 57014. A driver without cancel() is left to finish.
 *
 * postgres.js sends the request on a connection of its own, which it gives up
 * after the pool's connect_timeout (30 s by default): to a database that does
 * not answer, that connection held the process for that long. So the timeout
 * of the connection made here is timeoutMs: postgres.js reads connect_timeout
 * from the pool's options when it makes the connection, which is done
 * synchronously inside canceller(), and the pool's own value is put back at
 * once. postgres.js's cancel() also drops the promise of its request, so a
 * request that cannot connect would be an unhandled rejection (which ends a
 * Node process): its canceller is called here instead.
 */
export function sendCancel(pending: unknown, options: CancelOptions | undefined, timeoutMs = CANCEL_TIMEOUT_MS): Promise<void> {
  const q = pending as Cancellable;
  if (typeof q.canceller !== "function") {
    if (typeof q.cancel === "function") q.cancel();
    return Promise.resolve();
  }
  const canceller = q.canceller;
  q.canceller = null;
  const before = options?.connect_timeout;
  // (0 would mean no timeout at all)
  if (options) options.connect_timeout = Math.max(1, timeoutMs) / 1000;
  let request: Promise<unknown>;
  try {
    request = Promise.resolve(canceller(q));
  } catch (error) {
    request = Promise.reject(error);
  } finally {
    if (options) options.connect_timeout = before;
  }
  return request.then(() => {}, () => {});
}

/** The code of a statement refused after close(). */
export const STOPPED = "WORKER_STOPPED";

/**
 * What a statement refused after close() fails with. A code of its own, not
 * postgres.js's CONNECTION_ENDED: the connection is there, so a transaction
 * whose statement was refused must be rolled back on it (begin() in
 * context.ts leaves a transaction whose connection is gone as it is).
 */
function refused(): Error {
  return Object.assign(new Error("the worker has stopped: it sends no more statements"), { code: STOPPED });
}

/** Whether error is a statement refused because the worker had stopped. */
export const isStopped = (error: unknown): boolean => (error as { code?: unknown } | null)?.code === STOPPED;

/**
 * The statements a worker's database layer has in flight (src/db/context.ts
 * tracks each one until it settles), so that its stop can cancel them: a
 * statement waiting on a lock, or on a backend that hangs, would otherwise
 * keep its connection open, and the process up, after the stop (postgres.js
 * ends a connection by waiting for the server to close it). Once closed, it
 * refuses new statements: the worker sends nothing on a pool it was given
 * once its stop has resolved.
 */
export class Statements {
  #running = new Set<PromiseLike<unknown>>();
  #requests = new Set<Promise<void>>();
  #closed = false;

  constructor(private options: CancelOptions | undefined) {}

  get closed(): boolean {
    return this.#closed;
  }

  /** Statements in flight. */
  get size(): number {
    return this.#running.size;
  }

  /** Tracks a statement until it settles. (A postgres.js query starts when awaited: this starts it.) */
  track<T>(pending: T): T {
    const p = pending as unknown as PromiseLike<unknown>;
    this.#running.add(p);
    const done = () => void this.#running.delete(p);
    p.then(done, done);
    return pending;
  }

  /** A statement refused (after close()): what to return in its place. */
  refuse<T>(): T {
    return Promise.reject(refused()) as T;
  }

  /** Cancels one statement (a claim that the stop waits for no longer); cancelAll() waits for the request too. */
  cancel(pending: unknown, timeoutMs = CANCEL_TIMEOUT_MS): void {
    const request = sendCancel(pending, this.options, timeoutMs);
    this.#requests.add(request);
    void request.then(() => this.#requests.delete(request));
  }

  /** Refuses statements from now on. */
  close(): void {
    this.#closed = true;
  }

  /**
   * Cancels every statement in flight, each request given up after timeoutMs;
   * resolves once every cancel request has ended and the statements have
   * settled (one the database does not answer never does: bound the wait).
   */
  async cancelAll(timeoutMs = CANCEL_TIMEOUT_MS): Promise<void> {
    // A statement tracked in this turn is handed to a connection a microtask later; cancelled
    // before that, postgres.js would leave the connection it is then handed to out of use.
    await null;
    for (const p of this.#running) this.cancel(p, timeoutMs);
    const settled = [...this.#running].map((p) => Promise.resolve(p).then(() => {}, () => {}));
    await Promise.all([...this.#requests, ...settled]);
  }
}
