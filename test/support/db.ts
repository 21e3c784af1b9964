import postgres from "postgres";
import { afterAll, afterEach } from "vitest";
import { createQueue, createWorker, migrate, type Queue, type Worker, type WorkerOptions } from "../../src/index.ts";

export const DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

export interface TestDb {
  schema: string;
  /** An admin pool for assertions and setup. */
  sql: postgres.Sql;
  queue: Queue;
  /** Creates a worker on this schema, stopped for you after each test. */
  worker(options: Omit<WorkerOptions, "connection" | "schema"> & Partial<Pick<WorkerOptions, "connection">>): Worker;
}

/**
 * Gives a test file its own freshly migrated schema, dropped after the file.
 * Every worker made through it is stopped after each test, and the test fails
 * if one was left running jobs.
 */
export async function testDb(file: string): Promise<TestDb> {
  const base = file.split("/").pop()!.replace(/\.test\.ts$/, "").replace(/[^a-z0-9]/gi, "_").toLowerCase();
  const schema = `t_${base}_${crypto.randomUUID().slice(0, 8)}`;
  const sql = postgres(DATABASE_URL, { onnotice: () => {}, max: 4 });
  await migrate({ connection: DATABASE_URL, schema });
  const queue = createQueue({ connection: DATABASE_URL, schema });
  const workers = new Set<Worker>();

  afterEach(async () => {
    const list = [...workers];
    workers.clear();
    await Promise.all(list.map((w) => w.stop({ gracefulStopMs: 0 })));
  });
  afterAll(async () => {
    await queue.close();
    await sql.unsafe(`drop schema if exists "${schema}" cascade`);
    await sql.end({ timeout: 5 });
  });

  return {
    schema,
    sql,
    queue,
    worker(options) {
      const w = createWorker({ connection: DATABASE_URL, schema, logger: "error", ...options });
      workers.add(w);
      return w;
    },
  };
}

/** An AbortSignal that bounds a wait, so a missing event fails the test instead of hanging it. */
export function deadline(ms = 10_000): AbortSignal {
  return AbortSignal.timeout(ms);
}

/** Waits until `check` returns a truthy value, re-checking every `everyMs`; fails after `timeoutMs`. */
export async function until<T>(check: () => Promise<T> | T, timeoutMs = 10_000, everyMs = 20): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > end) throw new Error(`condition not met within ${timeoutMs} ms: ${check.toString().slice(0, 200)}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Runs fn in a transaction of its own on `on`; returns what it read of schema f's jobs table: its
 * sequential scans, and the rows it read by scan or by index. (The counts are taken before and
 * after fn in the transaction: the backend's counters still hold earlier transactions' until it
 * reports them.)
 */
export async function jobsReadsDuring(
  on: postgres.Sql, f: string, fn: (tx: postgres.TransactionSql) => Promise<void>,
): Promise<{ seqScans: number; rows: number }> {
  return on.begin(async (tx) => {
    const read = async () => {
      const [row] = await tx.unsafe(`select coalesce(seq_scan, 0)::int as scans, (coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0))::int as rows
        from pg_stat_xact_user_tables where relid = '${f}.jobs'::regclass`);
      return { scans: (row?.scans ?? 0) as number, rows: (row?.rows ?? 0) as number };
    };
    const before = await read();
    await fn(tx);
    const after = await read();
    return { seqScans: after.scans - before.scans, rows: after.rows - before.rows };
  });
}

/** Waits until one statement whose text is like `pattern` waits on a lock (pg_stat_activity). */
export function untilWaitingOnLock(sql: postgres.Sql, pattern: string): Promise<boolean> {
  return until(async () => {
    const [r] = await sql.unsafe(
      `select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and query like $1`,
      [pattern],
    );
    return r!.n === 1;
  });
}

/** A promise with its resolve exposed: a handler awaits it, the test settles it. */
export function gate<T = void>() {
  let open!: (value: T) => void;
  const promise = new Promise<T>((r) => (open = r));
  return { promise, open };
}

/**
 * Starts this test file's job ids at a random point far from other files' (which all
 * start at 1), so that what names a job by its id alone (a watch's connection,
 * `pgpulse watch <id>` in pg_stat_activity) names this file's job.
 */
export async function distinctJobIds(db: TestDb): Promise<void> {
  const start = 1_000_000_000 + Math.floor(Math.random() * 1_000_000) * 1000;
  await db.sql.unsafe(`alter table "${db.schema}".jobs alter column id restart with ${start}`);
}

/** Holds what `statement` locks (a `select ... for update`) in a transaction of its own on sql; the returned function commits it. */
export async function holdLocks(sql: postgres.Sql, statement: string, params: string[] = []): Promise<() => Promise<void>> {
  const holder = await sql.reserve();
  await holder.unsafe("begin");
  await holder.unsafe(statement, params);
  return async () => {
    await holder.unsafe("commit");
    holder.release();
  };
}

/** The statuses of jobs of schema s (quoted) by id, in the order given (undefined: no such row). */
export async function statusesOf(sql: postgres.Sql, s: string, ids: string[]): Promise<(string | undefined)[]> {
  const rows = await sql.unsafe(`select id::text, status::text from ${s}.jobs where id = any($1::bigint[])`, [ids]);
  const by = new Map(rows.map((r) => [r.id as string, r.status as string]));
  return ids.map((id) => by.get(id));
}
