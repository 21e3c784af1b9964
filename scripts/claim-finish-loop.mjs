// pgpulse's own claim and finish statements in a bare loop, no worker: two loops
// claim BATCH jobs through claim_json() and mark them completed through
// finish(), the statements the worker uses, until N queued jobs are done. What the SQL alone
// allows on this machine, to set beside the bench's drain figures.
// Usage: npm run build && node scripts/claim-finish-loop.mjs (DATABASE_URL as for the tests; N, BATCH from the environment).
import postgres from "postgres";
import { createQueue, migrate } from "../dist/index.js";
import { createDb } from "../dist/db/db.js";

const url = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const n = Number(process.env.N ?? 60_000);
const batch = Number(process.env.BATCH ?? 250);
const schema = `loop_${Date.now().toString(36)}`;
const q = `"${schema}"`;
const sql = postgres(url, { onnotice: () => {}, max: 2 });
try {
  await migrate({ connection: url, schema });
  const queue = createQueue({ connection: url, schema });
  for (let i = 0; i < n; i += 1000) {
    await queue.enqueueMany(Array.from({ length: Math.min(1000, n - i) }, (_, k) => ({ task: "noop", payload: { i: i + k } })));
  }
  await queue.close();
  await sql.unsafe(`insert into ${q}.workers (id, queues, tasks, concurrency) values ('loop', '{default}', '{noop}', 16)`);
  // The worker's own operations, through the database layer it uses.
  const db = createDb(sql, { schema });
  let done = 0;
  const loop = async () => {
    for (;;) {
      const { jobs } = await db.jobClaim({ queues: ["default"], tasks: ["noop"], limit: batch, workerId: "loop", now: null });
      if (jobs.length === 0) return;
      done += jobs.length;
      const outcomes = jobs.map((j) => ({ id: j.id, attempt: j.attempt, kind: "completed", result: null, error: null, delay_ms: null, started_ms: null }));
      await db.jobFinishMany(outcomes, "loop", null);
    }
  };
  const t = performance.now();
  await Promise.all([loop(), loop()]);
  const ms = performance.now() - t;
  console.log(`${done} jobs claimed and completed in ${Math.round(ms)} ms by 2 loops of ${batch}: ${Math.round((done / ms) * 1000)} jobs/s`);
} finally {
  await sql.unsafe(`drop schema if exists ${q} cascade`);
  await sql.end();
}
