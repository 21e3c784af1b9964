// Claim latency against queue depth: claims 16 jobs at a time, 60 times, with
// 10,000 and then 1,000,000 jobs waiting, and prints p50/p99 per depth.
// Usage: npm run build && node scripts/claim-depth.mjs (DATABASE_URL as for the tests).
import postgres from "postgres";
import { migrate } from "../dist/index.js";

const url = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const schema = `depth_${Date.now().toString(36)}`;
const sql = postgres(url, { onnotice: () => {} });
try {
  await migrate({ connection: url, schema });
  await sql.unsafe(`insert into "${schema}".workers (id, queues, tasks, concurrency) values ('w', '{default}', '{noop}', 16)`);
  let have = 0;
  for (const depth of [10_000, 1_000_000]) {
    await sql.unsafe(`insert into "${schema}".jobs (task) select 'noop' from generate_series(1, $1)`, [depth - have]);
    have = depth;
    await sql.unsafe(`vacuum analyze "${schema}".jobs`);
    const times = [];
    for (let i = 0; i < 60; i++) {
      const t = performance.now();
      // the worker's claim statement (src/db/claim.ts): one row, the jobs as JSON tuples, id first
      const [row] = await sql.unsafe(`select * from "${schema}".claim_json('["default"]', '["noop"]', 16, 'w', null)`, [], { prepare: true });
      times.push(performance.now() - t);
      await sql.unsafe(`update "${schema}".jobs set status = 'completed', worker_id = null where id = any($1::text::bigint[])`, [
        `{${(row.jobs ?? []).map((j) => j[0]).join(",")}}`,
      ]);
    }
    times.sort((a, b) => a - b);
    console.log(`${depth} waiting: claim of 16, p50 ${times[30].toFixed(2)} ms, p99 ${times[59].toFixed(2)} ms`);
  }
} finally {
  await sql.unsafe(`drop schema if exists "${schema}" cascade`);
  await sql.end();
}
