/**
 * Kysely: enqueue inside a Kysely transaction.
 *
 *   import { fromKysely } from "pgpulse/kysely";
 *   await db.transaction().execute(async (trx) => {
 *     await trx.insertInto("orders").values(order).execute();
 *     await queue.enqueue("send-receipt", { order }, { tx: fromKysely(trx) });
 *   });
 *
 * Runs pgpulse's statements through the transaction's own connection, as
 * raw compiled queries. Needs Kysely's PostgresDialect (node-postgres underneath).
 */
import { CompiledQuery, type Kysely } from "kysely";
import type { ForeignTx } from "../db/connection.ts";
import { PgPulseError } from "../shared/errors.ts";

export function fromKysely(trx: Kysely<any>): ForeignTx {
  if (trx === null || typeof trx !== "object" || typeof (trx as { executeQuery?: unknown }).executeQuery !== "function") {
    throw new PgPulseError("INVALID_INPUT", "fromKysely takes a Kysely transaction (the trx of db.transaction().execute)");
  }
  return {
    foreign: true,
    unsafe: async (text, params = []) => (await trx.executeQuery(CompiledQuery.raw(text, [...params]))).rows as Record<string, unknown>[],
  };
}
