// Enqueue rates of builds of pgpulse side by side (--pgpulse-dir name=DIR,...),
// with no worker running, interleaved for --rounds rounds (the order flips each
// round), each run in a process of its own: --single enqueues one after
// another, twice as many from 16 callers at once, and 20 enqueueMany calls of
// 1,000. Medians per build. With --keyed, every job carries a key of its own
// (an idempotency key that never collides): the keyed path, enqueue_many().
//   npm --prefix bench run enqueue-builds -- --pgpulse-dir before=/tmp/a,after=/tmp/b --rounds 4
//   npm --prefix bench run enqueue-builds -- --pgpulse-dir before=/tmp/a,after=/tmp/b --rounds 4 --keyed
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import postgres from "postgres";
import { parseBuilds, runInterleaved } from "./builds.mjs";
import { ensureDatabase } from "./db.mjs";
import { median } from "./stats.mjs";
import { loadPgpulse } from "./systems/pgpulse.mjs";

const { values } = parseArgs({
  options: {
    "pgpulse-dir": { type: "string" },
    rounds: { type: "string", default: "4" },
    single: { type: "string", default: "3000" },
    keyed: { type: "boolean", default: false },
    "database-url": { type: "string", default: process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/pgpulse_bench" },
    child: { type: "string" },
  },
});
const url = values["database-url"];
const single = Number(values.single);
const CLIENTS = 16;
const BULK_CALLS = 20;
const BULK_SIZE = 1000;

if (values.child !== undefined) {
  // One run: prints one JSON line.
  const pp = await loadPgpulse(values.child || null);
  const schema = `enqueue_builds_${process.pid}`;
  await pp.migrate({ connection: url, schema });
  const queue = pp.createQueue({ connection: url, schema });
  let n = 0;
  const key = () => (values.keyed ? { key: `k${n++}` } : undefined);
  for (let i = 0; i < 300; i++) await queue.enqueue("noop", { i }, key()); // connections, prepared statements
  let t = performance.now();
  for (let i = 0; i < single; i++) await queue.enqueue("noop", { i }, key());
  const singlePerSec = single / ((performance.now() - t) / 1000);
  const each = Math.ceil((single * 2) / CLIENTS);
  t = performance.now();
  await Promise.all(Array.from({ length: CLIENTS }, async () => {
    for (let i = 0; i < each; i++) await queue.enqueue("noop", { i }, key());
  }));
  const parallelPerSec = (each * CLIENTS) / ((performance.now() - t) / 1000);
  t = performance.now();
  for (let b = 0; b < BULK_CALLS; b++) {
    await queue.enqueueMany(Array.from({ length: BULK_SIZE }, (_, i) => ({ task: "noop", payload: { i }, ...key() })));
  }
  const bulkPerSec = (BULK_CALLS * BULK_SIZE) / ((performance.now() - t) / 1000);
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  await sql.unsafe(`drop schema "${schema}" cascade`);
  await sql.end();
  await queue.close();
  console.log(JSON.stringify({ single: Math.round(singlePerSec), parallel: Math.round(parallelPerSec), bulk: Math.round(bulkPerSec) }));
  process.exit(0);
}

await ensureDatabase(url);
const builds = parseBuilds(values["pgpulse-dir"]);
const runs = runInterleaved(builds, Number(values.rounds), fileURLToPath(import.meta.url),
  ["--single", String(single), "--database-url", url, ...(values.keyed ? ["--keyed"] : [])],
  (round, b, r) => console.log(`[r${round}] ${b.name}: single ${r.single}/s, ${CLIENTS} at once ${r.parallel}/s, bulk ${r.bulk} jobs/s`));
console.log(`\n${values.keyed ? "every job with a key of its own; " : ""}no worker running; medians of ${values.rounds} interleaved rounds\n`);
console.log(`| build | single/s | ${CLIENTS} at once /s | bulk (${BULK_SIZE}) jobs/s |`);
console.log("|---|---:|---:|---:|");
for (const [name, rs] of runs) {
  const m = (k) => Math.round(median(rs.map((r) => r[k]))).toLocaleString("en-US");
  console.log(`| ${name} | ${m("single")} | ${m("parallel")} | ${m("bulk")} |`);
}
