/**
 * node-postgres (`pg`): enqueue inside a pg transaction.
 *
 *   import { fromPg } from "pgpulse/pg";
 *   const client = await pool.connect();
 *   await client.query("begin");
 *   await client.query("insert into orders ...");
 *   await queue.enqueue("send-receipt", { order }, { tx: fromPg(client) });
 *   await client.query("commit"); // or rollback: the job goes with it
 *
 * Takes anything with pg's `query(text, values)`: a PoolClient (in a
 * transaction you began), a Client. Not a Pool: each of its queries may run on
 * another connection, outside your transaction.
 */
import type { ForeignTx } from "../db/connection.ts";
import { PgPulseError } from "../shared/errors.ts";

/** What pgpulse needs of a node-postgres client. */
export interface PgClientLike {
  query(text: string, values?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
}

export function fromPg(client: PgClientLike): ForeignTx {
  if (client === null || typeof client !== "object" || typeof client.query !== "function") {
    throw new PgPulseError("INVALID_INPUT", "fromPg takes a node-postgres client (a PoolClient or a Client)");
  }
  if ("totalCount" in client && "idleCount" in client) {
    throw new PgPulseError("INVALID_INPUT", "fromPg takes a client in a transaction, not a Pool: `const client = await pool.connect()` and begin");
  }
  return { foreign: true, unsafe: async (text, params = []) => (await client.query(text, [...params])).rows };
}
