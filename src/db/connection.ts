import postgres from "postgres";
import { PgPulseError } from "../shared/errors.ts";

/** A Postgres connection string, or a postgres.js `sql` instance you own. */
export type Connection = string | postgres.Sql;

/**
 * What sits between pgpulse and Postgres. "transaction": a pooler in
 * transaction mode (PgBouncer, Supavisor, Neon's pooled URL), which hands each
 * transaction a different server connection, so nothing may outlive one:
 * no prepared statements, no session settings, no LISTEN.
 */
export type Pooler = "transaction";

/** Any postgres.js handle that can run a query: a pool, or a transaction. */
export type SqlHandle = postgres.Sql | postgres.TransactionSql | ForeignTx;

/**
 * Another driver's transaction, as pgpulse's adapters wrap it (`pgpulse/pg`,
 * `pgpulse/kysely`, `pgpulse/drizzle`): runs one statement with `$n`
 * parameters and resolves with its rows, typed as node-postgres and postgres.js
 * both return them (int8 as text, timestamptz as Date, json parsed).
 */
export interface ForeignTx {
  readonly foreign: true;
  unsafe(text: string, params?: readonly unknown[], options?: { prepare?: boolean }): Promise<Record<string, unknown>[]>;
}

/**
 * Settings for the pools pgpulse opens itself.
 * - backoff: reconnect within about a second of the database coming back
 *   (postgres.js waits up to 20 s by default, 3^n/100 s after n failures).
 * - fetch_types off: pgpulse sends and reads lists as JSON, and postgres.js's
 *   type lookup on a fresh connection has crashed processes when the
 *   connection died under it.
 */
export const POOL_DEFAULTS = {
  backoff: (attempt: number) => Math.min(1, 0.05 * 2 ** attempt) * (0.75 + Math.random() / 2),
  fetch_types: false,
  onnotice: () => {},
} as const;

export { SCHEMA_DEFAULT } from "../shared/defaults.ts";

/** Connections in a queue's own pool (enqueue, status), and in a worker's (claims, finishes, heartbeats, maintenance). */
export const POOL_SIZE_QUEUE_DEFAULT = 10;
export const POOL_SIZE_WORKER_DEFAULT = 4;

/** Checks `pooler` and `poolSize`, as given to createQueue and createWorker. */
export function checkPoolOptions(options: { pooler?: unknown; poolSize?: unknown }): void {
  if (options.pooler !== undefined && options.pooler !== "transaction") {
    throw new PgPulseError("INVALID_INPUT", `pooler must be "transaction" (or left out for a direct connection), got ${JSON.stringify(options.pooler)}`, {
      details: [{ path: "pooler", message: "unknown pooler mode" }],
    });
  }
  const n = options.poolSize;
  if (n !== undefined && !(typeof n === "number" && Number.isInteger(n) && n >= 1 && n <= 1000)) {
    throw new PgPulseError("INVALID_INPUT", `poolSize must be an integer from 1 to 1000, got ${JSON.stringify(n)}`, {
      details: [{ path: "poolSize", message: "not an integer from 1 to 1000" }],
    });
  }
}

/** Which of a postgres.js instance's transforms change what it reads: "column", "value" or "row". */
export function readTransforms(sql: postgres.Sql): string[] {
  const t = (sql as unknown as { options?: { transform?: Record<string, { from?: unknown } | undefined> } }).options?.transform;
  return t ? ["column", "value", "row"].filter((k) => typeof t[k]?.from === "function") : [];
}

/**
 * A postgres.js instance's parsed options (`sql.options`, which postgres() takes
 * back as they are) get this transform: none on what it reads or writes; what
 * an undefined parameter becomes is kept.
 */
function readsAsSent(options: Record<string, unknown>) {
  const undef = (options.transform as { undefined?: unknown } | undefined)?.undefined;
  return { undefined: undef, column: {}, value: {}, row: {} };
}

/**
 * The per-instance state inside parsed options, fresh for an instance made from
 * another's: postgres.js counts reconnect attempts there, so sharing it would
 * tie one pool's reconnect backoff to the other's.
 */
function ownState(options: Record<string, unknown>) {
  const shared = options.shared as { typeArrayMap?: unknown } | undefined;
  return { shared: { retries: 0, typeArrayMap: shared?.typeArrayMap ?? {} }, parameters: {} };
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

/** Checks a schema name and returns it double-quoted for SQL text. */
export function quoteSchema(schema: string): string {
  if (typeof schema !== "string" || !IDENTIFIER.test(schema)) {
    throw new PgPulseError(
      "INVALID_INPUT",
      `schema must be a lower-case SQL identifier (letters, digits, _; at most 63), got ${JSON.stringify(schema)}`,
      { details: [{ path: "schema", message: "not a plain identifier" }] },
    );
  }
  return `"${schema}"`;
}

/**
 * Opens a pool for a connection string, or wraps the caller's `sql`.
 * `owned` says whether `close()` should end it.
 */
export function openSql(
  connection: Connection,
  options: { applicationName?: string; max?: number; pooler?: Pooler } = {},
): { sql: postgres.Sql; owned: boolean } {
  if (typeof connection === "string") {
    if (connection === "") {
      throw new PgPulseError("INVALID_INPUT", "connection is an empty string: give a postgres:// URL", {
        details: [{ path: "connection", message: "empty" }],
      });
    }
    const sql = postgres(connection, {
      max: options.max ?? 10,
      ...POOL_DEFAULTS,
      ...(options.pooler === "transaction" ? { prepare: false } : {}),
      connection: { application_name: options.applicationName ?? "pgpulse" },
    });
    return { sql, owned: true };
  }
  if (typeof connection === "function" && typeof (connection as postgres.Sql).unsafe === "function") {
    // pgpulse reads its own rows by column name and its payloads as stored: an
    // instance that transforms what it reads (postgres.camel renames columns and
    // the keys inside JSON values) would hand it changed rows. It gets a pool of
    // its own with the instance's settings and no transform, ended by close().
    if (readTransforms(connection as postgres.Sql).length > 0) {
      const o = (connection as postgres.Sql).options as unknown as Record<string, unknown> & { connection?: Record<string, unknown> };
      const sql = postgres({
        ...o,
        ...ownState(o),
        transform: readsAsSent(o),
        max: options.max ?? 10,
        ...POOL_DEFAULTS,
        ...(options.pooler === "transaction" ? { prepare: false } : {}),
        connection: { ...o.connection, application_name: options.applicationName ?? "pgpulse" },
      } as unknown as postgres.Options<{}>);
      return { sql, owned: true };
    }
    return { sql: connection, owned: false };
  }
  throw new PgPulseError("INVALID_INPUT", "connection must be a postgres:// URL or a postgres.js sql instance", {
    details: [{ path: "connection", message: "neither a string nor a postgres.js sql" }],
  });
}

/**
 * A single-connection instance for a connection that must be ours alone
 * (LISTEN), and that we may kill and replace without touching the pool: with
 * the settings of `source` (the pool, or the caller's direct `sql`), or to a
 * URL (a direct connection past a transaction-mode pooler).
 */
export function dedicatedSql(source: Connection, applicationName: string): postgres.Sql {
  if (typeof source === "string") {
    return postgres(source, {
      max: 1, idle_timeout: null, max_lifetime: null, ...POOL_DEFAULTS, connection: { application_name: applicationName },
    } as unknown as postgres.Options<{}>);
  }
  const options = source.options as unknown as Record<string, unknown> & { connection?: Record<string, unknown> };
  return postgres({
    ...options,
    ...ownState(options),
    transform: readsAsSent(options),
    max: 1,
    idle_timeout: null,
    max_lifetime: null,
    ...POOL_DEFAULTS,
    connection: { ...options.connection, application_name: applicationName },
  } as unknown as postgres.Options<{}>);
}
