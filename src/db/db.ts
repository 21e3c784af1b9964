import type postgres from "postgres";
import { bulkOps, bulkSql } from "./bulk.ts";
import { claimOps, claimSql } from "./claim.ts";
import { type Connection, dedicatedSql, quoteSchema, type SqlHandle } from "./connection.ts";
import type { DbContext } from "./context.ts";
import type { Statements } from "./statements.ts";
import { finishOps, finishSql, progressSql } from "./finish.ts";
import { flowsOps, flowsSql } from "./flows.ts";
import { jobsOps, jobsSql } from "./jobs.ts";
import { leaseOps, leaseSql } from "./lease.ts";
import { logsOps, logsSql } from "./logs.ts";
import { pruneOps, pruneSql } from "./prune.ts";
import { queuesOps, queuesSql } from "./queues.ts";
import { reaperOps, reaperSql } from "./reaper.ts";
import { schedulesOps, schedulesSql } from "./schedules.ts";
import { statsOps, statsSql } from "./stats.ts";
import { statusOps, statusSql } from "./status.ts";
import { vacuumOps, vacuumSql } from "./vacuum.ts";

export interface DbOptions {
  schema: string;
  /**
   * Send statements as named prepared statements (parsed once per
   * connection). Off behind a transaction-mode pooler, which cannot keep
   * them. @default true
   */
  prepare?: boolean;
  /**
   * Where connections of their own (LISTEN) go: a URL or a postgres.js `sql`
   * straight to Postgres, when the pool goes through a transaction-mode pooler.
   * @default the pool's settings
   */
  session?: Connection;
  /**
   * Tracks the statements in flight on the pool, so that they can be
   * cancelled together and refused from then on (a worker's stop). Those in a
   * caller's transaction (withTx) are not. @default none
   */
  statements?: Statements;
}

function texts(q: string) {
  return {
    jobs: jobsSql(q),
    bulk: bulkSql(q),
    claim: { pool: claimSql(q), tx: claimSql(q, true) },
    finish: { finish: finishSql(q), progress: progressSql(q) },
    lease: leaseSql(q),
    flows: flowsSql(q),
    logs: logsSql(q),
    reaper: reaperSql(q),
    prune: pruneSql(q),
    vacuum: vacuumSql(q),
    schedules: schedulesSql(q),
    queues: queuesSql(q),
    status: statusSql(q),
    stats: statsSql(q),
  };
}

function bind(c: DbContext, t: ReturnType<typeof texts>) {
  return {
    ...jobsOps(c, t.jobs),
    ...bulkOps(c, t.bulk),
    ...claimOps(c, t.claim),
    ...finishOps(c, t.finish),
    ...leaseOps(c, t.lease),
    ...flowsOps(c, t.flows),
    ...logsOps(c, t.logs),
    ...reaperOps(c, t.reaper),
    ...pruneOps(c, t.prune),
    ...vacuumOps(c, t.vacuum),
    ...schedulesOps(c, t.schedules),
    ...queuesOps(c, t.queues),
    ...statusOps(c, t.status),
    ...statsOps(c, t.stats),
  };
}

/** Every operation pgpulse runs on its schema, each a named method with typed parameters and rows. */
export type DbOps = ReturnType<typeof bind>;

/**
 * The database layer: every statement pgpulse runs lives under src/db/ and is
 * reached through one of these methods. Statements are built once per schema.
 * Parts of pgpulse take the slice they use (`Pick<Db, "workerReap">`), which
 * is what their unit tests fake.
 */
export interface Db extends DbOps {
  readonly schema: string;
  /** The same operations inside the caller's transaction. */
  withTx(tx: SqlHandle): DbOps;
  /** A connection of its own with the pool's settings (LISTEN needs one), which the caller ends. */
  dedicated(applicationName: string): postgres.Sql;
}

export function createDb(sql: postgres.Sql, options: DbOptions): Db {
  const q = quoteSchema(options.schema);
  const t = texts(q);
  // A postgres.js transaction given as the connection (sql.begin's handle: it has savepoint(),
  // not begin()) is the caller's transaction, not a pool to open transactions on.
  const inTransaction = typeof (sql as { savepoint?: unknown }).savepoint === "function";
  const base: DbContext = {
    handle: sql, pool: inTransaction ? null : sql, schema: options.schema, q, prepare: options.prepare ?? true,
    ...(options.statements ? { statements: options.statements } : {}),
  };
  const ops = bind(base, t);
  // A caller that enqueues several times in one transaction binds the operations once.
  const inTxs = new WeakMap<SqlHandle, DbOps>();
  const withTx = (tx: SqlHandle): DbOps => {
    if (tx === sql) return ops;
    let bound = inTxs.get(tx);
    if (!bound) {
      const { statements: _ours, ...caller } = base;
      inTxs.set(tx, (bound = bind({ ...caller, handle: tx, pool: null }, t)));
    }
    return bound;
  };
  return {
    ...ops,
    schema: options.schema,
    withTx,
    dedicated: (applicationName) => dedicatedSql(options.session ?? sql, applicationName),
  };
}
