import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { begin } from "../src/db/context.ts";
import { DATABASE_URL, until } from "./support/db.ts";

// pgpulse's own transactions (the reaper's, the pruner's, a schedule's tick, bulk operations,
// migrate) when the server ends the connection under them. postgres.js 3.4.9 sends ROLLBACK on
// the dead connection when the transaction's function rejects, and that write throws outside any
// promise (porsager/postgres#1154): without begin()'s guard this file's process dies, which vitest
// reports as an unhandled error.
const pool = postgres(DATABASE_URL, { max: 2, onnotice: () => {}, connection: { application_name: "pgpulse begin.test" } });
const admin = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
afterAll(async () => {
  await pool.end({ timeout: 1 });
  await admin.end({ timeout: 1 });
});

/** Runs a transaction that sleeps, and terminates its backend once the sleep is under way. */
async function killedUnder(): Promise<unknown> {
  let pid = 0;
  const tx = begin(pool, async (t) => {
    [{ pid }] = (await t`select pg_backend_pid() as pid`) as unknown as [{ pid: number }];
    await t`select pg_sleep(30)`;
    return "finished";
  });
  const outcome = tx.then((v) => v, (error: unknown) => error);
  await until(async () => pid > 0 && (await admin`select 1 from pg_stat_activity where pid = ${pid} and query like '%pg_sleep%' and state = 'active'`).length > 0);
  await admin`select pg_terminate_backend(${pid})`;
  return outcome;
}

describe("begin(): a transaction whose connection the server ends", () => {
  it("rejects with the connection's error, the process lives on, and the pool keeps working", async () => {
    for (let i = 0; i < 3; i++) {
      const error = await killedUnder();
      expect(["CONNECTION_CLOSED", "57P01"]).toContain((error as { code?: string }).code);
      // (postgres.js may hand the next query on that connection the server's 57P01 as well: pgpulse
      // takes it as the database being briefly away, as for any query; then the pool works)
      expect(await until(() => pool`select 1 as one`.then((rows) => rows[0], () => undefined))).toEqual({ one: 1 });
    }
  });

  it("passes other errors on after rolling back, and commits what succeeds", async () => {
    await expect(begin(pool, async (t) => t`select 1/0`)).rejects.toMatchObject({ code: "22012" });
    expect(await begin(pool, async (t) => (await t`select 2 as two`)[0])).toEqual({ two: 2 });
    const [{ open }] = (await admin`select count(*)::int as open from pg_stat_activity
      where state like 'idle in transaction%' and application_name = 'pgpulse begin.test'`) as unknown as [{ open: number }];
    expect(open).toBe(0);
  });
});
