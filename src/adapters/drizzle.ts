/**
 * Drizzle: enqueue inside a Drizzle transaction, on node-postgres or postgres.js.
 *
 *   import { fromDrizzle } from "pgpulse/drizzle";
 *   await db.transaction(async (tx) => {
 *     await tx.insert(orders).values(order);
 *     await queue.enqueue("send-receipt", { order }, { tx: fromDrizzle(tx) });
 *   });
 *
 * pgpulse's statements go through `tx.execute()`, with their `$n` parameters
 * passed as Drizzle parameters.
 */
import { type SQL, sql } from "drizzle-orm";
import type { ForeignTx } from "../db/connection.ts";
import { PgPulseError } from "../shared/errors.ts";

/** What pgpulse needs of a Drizzle transaction (or database) for Postgres. */
export interface DrizzleLike {
  execute(query: SQL): Promise<unknown>;
}

/** A statement with `$n` placeholders as Drizzle SQL: its text between them raw, each `$n` a parameter. */
export function toDrizzleSql(text: string, params: readonly unknown[]): SQL {
  const chunks: SQL[] = [];
  let last = 0;
  for (const m of text.matchAll(/\$(\d+)/g)) {
    chunks.push(sql.raw(text.slice(last, m.index)));
    const n = Number(m[1]);
    if (n < 1 || n > params.length) throw new PgPulseError("INVALID_INPUT", `statement refers to $${n} of ${params.length} parameters`);
    // (a Date as its ISO text: Drizzle's postgres.js driver passes timestamps through to a writer that takes strings)
    const value = params[n - 1];
    chunks.push(sql`${value instanceof Date ? value.toISOString() : value}`);
    last = m.index! + m[0].length;
  }
  chunks.push(sql.raw(text.slice(last)));
  return sql.join(chunks);
}

/** Postgres's text form of a timestamptz: "2026-11-29 11:30:00.123456+00". */
const TIMESTAMP = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2}(?:\.\d+)?)(Z|[+-]\d{2}(?::?\d{2})?)$/;

/**
 * Drizzle's drivers hand timestamps back as text (Drizzle maps them itself
 * for its own queries); pgpulse's rows carry them as Dates. Only columns
 * named like pgpulse's times (`*_at`, `at`, `now`) are turned.
 */
function withDates(row: Record<string, unknown>): Record<string, unknown> {
  for (const [k, value] of Object.entries(row)) {
    if (typeof value !== "string" || !(k.endsWith("_at") || k === "at" || k === "now")) continue;
    const m = TIMESTAMP.exec(value);
    if (!m) continue;
    const zone = m[3] === "Z" ? "Z" : m[3]!.length === 3 ? `${m[3]}:00` : m[3]!.includes(":") ? m[3] : `${m[3]!.slice(0, 3)}:${m[3]!.slice(3)}`;
    row[k] = new Date(`${m[1]}T${m[2]!.slice(0, 12)}${zone}`);
  }
  return row;
}

export function fromDrizzle(tx: DrizzleLike): ForeignTx {
  if (tx === null || typeof tx !== "object" || typeof tx.execute !== "function") {
    throw new PgPulseError("INVALID_INPUT", "fromDrizzle takes a Drizzle transaction (the tx of db.transaction)");
  }
  return {
    foreign: true,
    async unsafe(text, params = []) {
      let result: unknown;
      try {
        result = await tx.execute(toDrizzleSql(text, params));
      } catch (error) {
        // Drizzle wraps the driver's error, keeping it as the cause: pgpulse reads its Postgres code.
        const cause = (error as { cause?: { code?: unknown } } | null)?.cause;
        throw typeof cause?.code === "string" ? cause : error;
      }
      // node-postgres answers a QueryResult, postgres.js the rows themselves
      const rows = (Array.isArray(result) ? result : (result as { rows: Record<string, unknown>[] }).rows) as Record<string, unknown>[];
      return rows.map(withDates);
    },
  };
}
