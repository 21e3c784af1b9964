// Table size under a steady load once retention applies: a producer enqueues
// RATE single jobs per second for DURATION_S seconds while one worker (concurrency 16,
// no-op handler) runs them, with completed jobs kept RETENTION_MS and pruned
// every PRUNE_MS. Prints the size of the jobs table (heap, indexes, TOAST)
// and its live rows every 5 s: once the first jobs pass retention, the size
// should level off instead of growing with the number of jobs ever run.
// Usage: npm run build && node scripts/retention-size.mjs (DATABASE_URL as for the tests;
// RATE, DURATION_S, RETENTION_MS, PRUNE_MS from the environment).
import postgres from "postgres";
import { createQueue, createWorker, migrate } from "../dist/index.js";

const url = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const rate = Number(process.env.RATE ?? 1000);
const seconds = Number(process.env.DURATION_S ?? 90);
const retentionMs = Number(process.env.RETENTION_MS ?? 10_000);
const pruneMs = Number(process.env.PRUNE_MS ?? 2_000);
const schema = `retention_${Date.now().toString(36)}`;
const sql = postgres(url, { onnotice: () => {}, max: 2 });

const size = async () => {
  const [r] = await sql.unsafe(
    `select pg_total_relation_size($1::regclass)::float8 as bytes,
            (select count(*)::int from "${schema}".jobs) as rows`,
    [`"${schema}".jobs`],
  );
  return { mb: Math.round((r.bytes / 1048576) * 10) / 10, rows: r.rows };
};

try {
  await migrate({ connection: url, schema });
  const queue = createQueue({ connection: url, schema });
  const worker = createWorker({
    connection: url, schema, concurrency: 16, logger: "warn",
    retention: { completedMs: retentionMs }, pruneIntervalMs: pruneMs,
    tasks: { noop: async () => {} },
  });
  await worker.start();
  console.log(`${rate} jobs/s for ${seconds} s, completed jobs kept ${retentionMs} ms, pruned every ${pruneMs} ms`);
  console.log("| s | jobs enqueued | jobs table MB | rows |");
  console.log("|---:|---:|---:|---:|");
  const start = performance.now();
  let sent = 0;
  let nextReport = 5;
  const inFlight = new Set();
  while (performance.now() - start < seconds * 1000) {
    const due = Math.floor(((performance.now() - start) / 1000) * rate);
    while (sent < due && inFlight.size < 1000) {
      const p = queue.enqueue("noop", { i: sent }).finally(() => inFlight.delete(p));
      inFlight.add(p);
      sent++;
    }
    const elapsed = (performance.now() - start) / 1000;
    if (elapsed >= nextReport) {
      const s = await size();
      console.log(`| ${nextReport} | ${sent} | ${s.mb} | ${s.rows} |`);
      nextReport += 5;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  await Promise.all(inFlight);
  await worker.stop();
  await queue.close();
} finally {
  await sql.unsafe(`drop schema if exists "${schema}" cascade`);
  await sql.end();
}
