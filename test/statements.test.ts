import postgres from "postgres";
import { describe, expect, it } from "vitest";
import { type DbContext, run } from "../src/db/context.ts";
import { sendCancel, Statements } from "../src/db/statements.ts";
import { DATABASE_URL, holdLocks, testDb, until, untilWaitingOnLock } from "./support/db.ts";
import { startProxy } from "./support/tcp-proxy.ts";

// A worker's statements in flight (src/db/statements.ts): cancelled together when its stop's
// budget ends, each cancel request given up when the database does not answer it.
const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;
const s = `"${schema}"`;

const lock = (statement: string, params: string[] = []) => holdLocks(sql, statement, params);

describe("the statements a worker has in flight", () => {
  /** A context on pool that tracks its statements, as a worker's does. */
  function tracked(pool: postgres.Sql) {
    const statements = new Statements(pool.options);
    const c: DbContext = { handle: pool, pool, schema, q: s, prepare: true, statements };
    return { c, statements };
  }

  it("cancelAll() cancels a statement waiting on a lock, and once closed, statements are refused", async () => {
    const job = await queue.enqueue("t", {}, { queue: "tracked" });
    const own = postgres(DATABASE_URL, { max: 2, onnotice: () => {} });
    const { c, statements } = tracked(own);
    const release = await lock(`select 1 from ${s}.jobs where id = $1 for update`, [job.id]);
    try {
      const waiting = run(c, `select 1 from ${s}.jobs where id = $1 for update`, [job.id]).then(() => null, (e: { code?: string }) => e);
      await untilWaitingOnLock(sql, `%${schema}".jobs where id = $1 for update`);
      expect(statements.size).toBe(1);
      statements.close();
      // (the lock is still held: only the cancel ends the wait)
      await statements.cancelAll();
      expect(await waiting).toMatchObject({ code: "57014" });
      expect(statements.size).toBe(0);
      await expect(run(c, "select 1")).rejects.toMatchObject({ code: "WORKER_STOPPED" });
    } finally {
      await release();
      await own.end({ timeout: 1 });
    }
  });

  it("a cancel request that gets no answer is given up after its timeout, its connection closed, and the pool's connect_timeout left as it was", async () => {
    const job = await queue.enqueue("t", {}, { queue: "tracked-dark" });
    const proxy = await startProxy({ host: "127.0.0.1", port: 5432 });
    const own = postgres(`postgres://postgres@127.0.0.1:${proxy.port}/test`, { max: 1, onnotice: () => {} });
    const release = await lock(`select 1 from ${s}.jobs where id = $1 for update`, [job.id]);
    try {
      const waiting = own.unsafe(`select 1 from ${s}.jobs where id = $1 for update`, [job.id]);
      void waiting.catch(() => {});
      await untilWaitingOnLock(sql, `%${schema}".jobs where id = $1 for update`);
      proxy.stallAll();
      const open = proxy.connections();
      const began = performance.now();
      // (postgres.js's own cancel request would wait for its connect_timeout, 30 s)
      await sendCancel(waiting, own.options, 300);
      expect(performance.now() - began).toBeLessThan(3000);
      await until(() => proxy.connections() === open);
      expect(own.options.connect_timeout).toBe(30);
    } finally {
      await release();
      await own.end({ timeout: 0 });
      await proxy.close();
    }
  });
});
