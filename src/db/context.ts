import type postgres from "postgres";
import { isTransient } from "../shared/retry.ts";
import type { SqlHandle } from "./connection.ts";
import { type CancelOptions, sendCancel, type Statements } from "./statements.ts";

/**
 * What every operation of the database layer runs on: a handle (the pool, or
 * the caller's transaction), the schema, and whether statements are prepared.
 * That choice is made here and nowhere else: a transaction-mode pooler
 * (PgBouncer before 1.21) cannot keep prepared statements.
 */
export interface DbContext {
  handle: SqlHandle;
  /** The pool, for operations that open their own transaction; null inside a caller's transaction. */
  pool: postgres.Sql | null;
  schema: string;
  /** The schema, double-quoted for SQL text. */
  q: string;
  prepare: boolean;
  /** A worker's: tracks the statements in flight, for its stop to cancel (./statements.ts). */
  statements?: Statements;
}

export type Params = (string | number | boolean | Date | null | undefined)[];

/** Takes a transaction-scoped advisory lock if free (never waits): `locked` says whether it was. */
export const TRY_LOCK = `select pg_try_advisory_xact_lock(hashtext($1)) as locked`;

/** Runs one statement with the context's prepare setting. */
export function run(c: DbContext, text: string, params: Params = []) {
  return send(c, () => c.handle.unsafe(text, params as never[], { prepare: c.prepare }));
}

/**
 * Sends the statement statement() makes, tracked while in flight when the
 * context tracks statements (a worker's), or refused once they are closed.
 */
export function send<T>(c: DbContext, statement: () => T): T {
  if (!c.statements) return statement();
  if (c.statements.closed) return c.statements.refuse<T>();
  return c.statements.track(statement());
}

/**
 * Runs a statement whose rows are each one JSON text, and returns them parsed.
 * What may run in a caller's transaction is read this way: the caller's driver
 * may rename columns or the keys inside JSON values (postgres.js with
 * `transform: postgres.camel`), but a text column's value comes through as it
 * was sent. From postgres.js the rows come raw (bytes, no parser, no value
 * transform); from another driver, as its rows' one value, whatever its name.
 */
export async function runJson<T>(c: DbContext, text: string, params: Params = []): Promise<T[]> {
  const pending = run(c, text, params);
  const rows: unknown[] = "raw" in pending ? await pending.raw() : await pending;
  return rows.map((r) => JSON.parse(String(Array.isArray(r) ? r[0] : Object.values(r as object)[0])) as T);
}

/**
 * Runs a statement and returns its rows as arrays of values in column order,
 * which a caller's driver cannot rename. What may run in a caller's transaction
 * gives its json and jsonb columns as text, cast in SQL, and its reader parses
 * them: postgres.js's transforms (postgres.camel, pascal, kebab) rename the keys
 * inside JSON values only, and another driver's parsed JSON could not be told
 * from text. (The claim on pgpulse's own pool leaves them to the driver: claimSql.) Numbers may come parsed or as text: readers take them with Number().
 * (The claim reads this way, once per job: .values() costs the worker less than
 * .raw(), which makes a Buffer per value.)
 */
export async function runRows(c: DbContext, text: string, params: Params = [], signal?: AbortSignal): Promise<unknown[][]> {
  const pending = run(c, text, params);
  const unhook = signal ? cancelOnAbort(pending, signal, c) : undefined;
  try {
    if (!("values" in pending)) return (await pending).map((r) => Object.values(r as object));
    return (await pending.values()) as unknown[][];
  } finally {
    unhook?.();
  }
}

/**
 * Cancels the statement when signal aborts (./statements.ts, sendCancel): it
 * fails with 57014. A worker's context counts the cancel request among those its
 * stop waits for. Returns what unhooks it.
 */
export function cancelOnAbort(pending: unknown, signal: AbortSignal, c: DbContext): () => void {
  const cancel = () => {
    if (c.statements) c.statements.cancel(pending);
    else void sendCancel(pending, c.pool?.options as CancelOptions | undefined);
  };
  if (signal.aborted) {
    cancel();
    return () => {};
  }
  signal.addEventListener("abort", cancel, { once: true });
  return () => signal.removeEventListener("abort", cancel);
}

/**
 * A jobs row as JSON, for runJson: every column, ids as text (a bigint past
 * 2^53 would lose digits as a JSON number). jobRowFromJson reads it back.
 */
export const jobJson = (alias: string) =>
  `(to_jsonb(${alias}) || jsonb_build_object('id', ${alias}.id::text, 'batch_id', ${alias}.batch_id::text))`;

/**
 * Runs fn in a transaction of the context: a new one on the pool, or the
 * caller's own when the context is bound to one.
 */
export async function inTx<T>(c: DbContext, fn: (c: DbContext) => Promise<T>): Promise<T> {
  if (!c.pool) return fn(c);
  // (a worker that has stopped opens no transaction: BEGIN is sent by the pool, not by send())
  if (c.statements?.closed) return c.statements.refuse<T>();
  return begin(c.pool, (tx) => fn({ ...c, handle: tx, pool: null }));
}

/**
 * Whether error means the transaction's connection is gone: one of the errors that
 * mean the database is not there (isTransient: socket errors, class 08, the
 * server shutting down), the pool ended, or the server ending the session (FATAL).
 */
function connectionGone(error: unknown): boolean {
  const e = error as { code?: unknown; severity?: unknown } | null;
  return isTransient(error) || e?.code === "CONNECTION_ENDED" || e?.severity === "FATAL" || e?.severity === "PANIC";
}

/**
 * sql.begin(fn), safe when the connection dies under the transaction.
 * postgres.js (3.4.9, porsager/postgres#1154, #1208) sends ROLLBACK when fn
 * rejects, and on a connection already closed that write throws from a
 * setImmediate, outside any promise: the process dies. So when fn fails because
 * its connection is gone, its error is passed on here and fn's own promise is
 * left pending, so that postgres.js sends nothing more on that connection (the
 * server has ended the transaction with it). fn must query through `tx` only:
 * an error it passes on from another connection is taken for its own.
 */
export function begin<T>(pool: postgres.Sql, fn: (tx: postgres.TransactionSql) => Promise<T>): Promise<T> {
  let lost!: (error: unknown) => void;
  const gone = new Promise<never>((_, reject) => (lost = reject));
  const run = pool.begin(async (tx) => {
    try {
      return await fn(tx);
    } catch (error) {
      if (!connectionGone(error)) throw error;
      lost(error);
      return new Promise<never>(() => {});
    }
  }) as Promise<T>;
  // (postgres.js rejects begin() too once the connection's close is handled: after this, unread)
  run.catch(() => {});
  return Promise.race([run, gone]);
}

/** Postgres's "function (or procedure) does not exist". */
const UNDEFINED_FUNCTION = "42883";

/** Whether error is the database saying that procedure does not exist (a schema older than this producer). */
function isMissing(error: unknown, procedure: string): boolean {
  return (error as { code?: string }).code === UNDEFINED_FUNCTION && String((error as Error).message).includes(procedure);
}

/**
 * A procedure of a newer schema, called on the pool while the database has
 * it; inside a caller's transaction (a procedure that commits cannot run
 * there), and once the database said it has no such procedure, `older` is
 * called instead, as producers of that schema's version did, until this one
 * is restarted.
 */
export function whilePresent(c: DbContext, procedure: string) {
  let present = true;
  return async <T>(newer: () => Promise<T>, older: () => Promise<T>): Promise<T> => {
    if (c.pool && present) {
      try {
        return await newer();
      } catch (error) {
        // (nothing was written: the call failed to start)
        if (!isMissing(error, procedure)) throw error;
        present = false;
      }
    }
    return older();
  };
}
