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

/** Whether a postgres.js instance transforms what it reads (columns, values or rows). */
function transformsReads(sql: postgres.Sql): boolean {
  const t = (sql as unknown as { options?: { transform?: Record<string, { from?: unknown } | undefined> } }).options?.transform;
  return t !== undefined && ["column", "value", "row"].some((k) => typeof t[k]?.from === "function");
}

type ParsedOptions = Record<string, unknown> & { connection?: Record<string, unknown> };

/**
 * A new instance from another's parsed options (`sql.options`, which postgres()
 * takes back as they are), with `over` on top, reading rows as Postgres sends
 * them (no transform; what an undefined parameter becomes is kept), and with
 * its own reconnect state: postgres.js counts reconnect attempts inside the
 * options, so sharing them would tie one pool's backoff to the other's.
 */
function instanceFrom(options: ParsedOptions, over: Record<string, unknown>): postgres.Sql {
  const transform = options.transform as { undefined?: unknown } | undefined;
  const shared = options.shared as { typeArrayMap?: unknown } | undefined;
  return postgres({
    ...options,
    shared: { retries: 0, typeArrayMap: shared?.typeArrayMap ?? {} },
    parameters: {},
    transform: { undefined: transform?.undefined, column: {}, value: {}, row: {} },
    ...over,
  } as unknown as postgres.Options<{}>);
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
  const pool = { max: options.max ?? 10, ...POOL_DEFAULTS, ...(options.pooler === "transaction" ? { prepare: false } : {}) };
  const applicationName = options.applicationName ?? "pgpulse";
  if (typeof connection === "string") {
    if (connection === "") {
      throw new PgPulseError("INVALID_INPUT", "connection is an empty string: give a postgres:// URL", {
        details: [{ path: "connection", message: "empty" }],
      });
    }
    return { sql: postgres(connection, { ...pool, connection: { application_name: applicationName } }), owned: true };
  }
  if (typeof connection === "function" && typeof (connection as postgres.Sql).unsafe === "function") {
    // pgpulse reads its own rows by column name and its payloads as stored: an
    // instance that transforms what it reads (postgres.camel renames columns and
    // the keys inside JSON values) would hand it changed rows. It gets a pool of
    // its own with the instance's settings and no transform, ended by close().
    if (transformsReads(connection as postgres.Sql)) {
      const o = (connection as postgres.Sql).options as unknown as ParsedOptions;
      return { sql: instanceFrom(o, { ...pool, connection: { ...o.connection, application_name: applicationName } }), owned: true };
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
  const options = source.options as unknown as ParsedOptions;
  return instanceFrom(options, {
    max: 1, idle_timeout: null, max_lifetime: null, ...POOL_DEFAULTS, connection: { ...options.connection, application_name: applicationName },
  });
}
