import type postgres from "postgres";
import type { SqlHandle } from "./connection.ts";

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
}

export type Params = (string | number | boolean | Date | null | undefined)[];

/** Takes a transaction-scoped advisory lock if free (never waits): `locked` says whether it was. */
export const TRY_LOCK = `select pg_try_advisory_xact_lock(hashtext($1)) as locked`;

/** Runs one statement with the context's prepare setting. */
export function run(c: DbContext, text: string, params: Params = []) {
  return c.handle.unsafe(text, params as never[], { prepare: c.prepare });
}

/**
 * Runs fn in a transaction of the context: a new one on the pool, or the
 * caller's own when the context is bound to one.
 */
export async function inTx<T>(c: DbContext, fn: (c: DbContext) => Promise<T>): Promise<T> {
  if (!c.pool) return fn(c);
  return c.pool.begin((tx) => fn({ ...c, handle: tx, pool: null })) as Promise<T>;
}
