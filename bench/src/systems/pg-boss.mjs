// pg-boss 12 with LISTEN/NOTIFY on (useListenNotify + a notify queue) and its
// documented throughput options: batchSize with burstWhenBatchFull. A batch
// handler gets up to batchSize jobs; it runs them at most `concurrency` at a
// time, so no more handlers run at once than with any other system.
import { PgBoss } from "pg-boss";
import { pool } from "../stats.mjs";

export const BATCH_SIZE = 100;

export async function open({ url, schema, concurrency }) {
  const boss = new PgBoss({ connectionString: url, schema, useListenNotify: true });
  boss.on("error", (error) => console.error(`[pg-boss error] ${error.message}`));
  await boss.start();
  await boss.createQueue("noop", { notify: true });
  let workerId = null;
  return {
    schemas: [schema],
    // fetchNextJob (plans.js) locks jobs FOR UPDATE SKIP LOCKED.
    claimMatcher: /skip locked/i,
    enqueue: (payload) => boss.send("noop", payload),
    enqueueBulk: (payloads) => boss.insert("noop", payloads.map((data) => ({ data }))),
    async startWorker(handler) {
      workerId = await boss.work("noop", { batchSize: BATCH_SIZE, burstWhenBatchFull: true }, async (jobs) => {
        await pool(jobs, concurrency, (job) => handler(job.data));
      });
      return { stop: () => boss.offWork("noop", { id: workerId, wait: true }) };
    },
    async remaining() {
      const rows = await boss.getDb().executeSql(`select count(*)::int as n from "${schema}".job where name = 'noop' and state < 'completed'`);
      return rows.rows[0].n;
    },
    close: () => boss.stop({ graceful: true, timeout: 10_000 }),
  };
}
