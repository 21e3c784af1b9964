import postgres from "postgres";
import { describe, expect, it } from "vitest";
import { createDb } from "../src/db/db.ts";
import { Statements } from "../src/db/statements.ts";
import { createWorker } from "../src/index.ts";
import { DATABASE_URL, deadline, testDb, until } from "./support/db.ts";

// A worker that has stopped opens no transaction (inTx: the reaper, prune, schedules, stats), and
// one whose statement it refuses is rolled back: its connection goes back to the pool. (A refusal
// that read as "the connection is gone" left the transaction open for good, holding a connection
// of a pool the caller passed in.)
const db = await testDb(import.meta.url);
const { sql, schema } = db;

/** Resolves "answered" or "no answer" within ms. */
function answered(p: Promise<unknown>, ms: number): Promise<string> {
  return Promise.race([
    p.then(() => "answered", () => "answered"),
    new Promise<string>((r) => deadline(ms).addEventListener("abort", () => r("no answer"))),
  ]);
}

describe("a transaction of a worker that has stopped", () => {
  it("is refused, and the pool it would have used answers", async () => {
    const app = `stopped-tx-${crypto.randomUUID().slice(0, 8)}`;
    const pool = postgres(DATABASE_URL, { max: 1, onnotice: () => {}, connection: { application_name: app } });
    try {
      const statements = new Statements(pool.options as never);
      const wdb = createDb(pool, { schema, statements });
      statements.close();
      const reap = wdb.workerReap({ staleAfterMs: 60_000, now: null });
      await expect(reap).rejects.toMatchObject({ code: "WORKER_STOPPED" });
      expect(await answered(pool`select 1`, 3000)).toBe("answered");
    } finally {
      await pool.end({ timeout: 0 });
    }
  });

  it("waiting for a connection of the caller's pool when the stop's budget ends: the pool is the caller's again after the stop", async () => {
    const app = `stopped-tx2-${crypto.randomUUID().slice(0, 8)}`;
    const pool = postgres(DATABASE_URL, { max: 1, onnotice: () => {}, connection: { application_name: app } });
    // (the pool as given, with its begin() calls counted, so the test knows one is waiting)
    let begins = 0;
    const counted = new Proxy(pool, {
      get(target, key, receiver) {
        const v = Reflect.get(target, key, receiver);
        if (key !== "begin") return typeof v === "function" ? v.bind(target) : v;
        return (...args: unknown[]) => (begins++, (v as (...a: unknown[]) => unknown).apply(target, args));
      },
    });
    const w = createWorker({
      connection: counted, schema, queues: ["leak"], tasks: { t: async () => 1 }, logger: "error",
      reaperIntervalMs: 10,
    });
    let reserved: postgres.ReservedSql | undefined;
    try {
      await w.start();
      // The application takes the pool's one connection for a while: the worker's statements queue,
      // and its next reaper pass's BEGIN (not tracked) waits for the connection.
      reserved = await pool.reserve();
      const before = begins;
      await until(() => begins > before);
      await w.stop({ gracefulStopMs: 0 });
      reserved.release();
      reserved = undefined;
      expect(await answered(pool`select 1`, 3000)).toBe("answered");
      const open = await sql`select state from pg_stat_activity where application_name = ${app} and state like 'idle in transaction%'`;
      expect(open).toHaveLength(0);
    } finally {
      reserved?.release();
      await pool.end({ timeout: 0 });
    }
  }, 30_000);
});
