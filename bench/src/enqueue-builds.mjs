// Enqueue rates of builds of pgpulse side by side (--pgpulse-dir name=DIR,...),
// with no worker running, interleaved for --rounds rounds (the order flips each
// round), each run in a process of its own: --single enqueues one after
// another, twice as many from 16 callers at once, and 20 enqueueMany calls of
// 1,000. Medians per build. With --keyed, every job carries a key of its own
// (an idempotency key that never collides): the keyed path, enqueue_many(). With
// --flows, each enqueue is a flow of three jobs (one root, two children), and
// each bulk call a flow of 1,000 jobs without parents: enqueue_flow().
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
    flows: { type: "boolean", default: false },
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
  const one = values.flows
    ? (payload) => queue.enqueueFlow([{ name: "a", task: "noop", payload }, { name: "b", task: "noop", parents: ["a"] }, { name: "c", task: "noop", parents: ["a"] }])
    : (payload) => queue.enqueue("noop", payload, key());
  const many = values.flows
    ? (size) => queue.enqueueFlow(Array.from({ length: size }, (_, i) => ({ name: `j${i}`, task: "noop", payload: { i } })))
    : (size) => queue.enqueueMany(Array.from({ length: size }, (_, i) => ({ task: "noop", payload: { i }, ...key() })));
  for (let i = 0; i < 300; i++) await one({ i }); // connections, prepared statements
  let t = performance.now();
  for (let i = 0; i < single; i++) await one({ i });
  const singlePerSec = single / ((performance.now() - t) / 1000);
  const each = Math.ceil((single * 2) / CLIENTS);
  t = performance.now();
  await Promise.all(Array.from({ length: CLIENTS }, async () => {
    for (let i = 0; i < each; i++) await one({ i });
  }));
  const parallelPerSec = (each * CLIENTS) / ((performance.now() - t) / 1000);
  t = performance.now();
  for (let b = 0; b < BULK_CALLS; b++) {
    await many(BULK_SIZE);
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
  ["--single", String(single), "--database-url", url, ...(values.keyed ? ["--keyed"] : []), ...(values.flows ? ["--flows"] : [])],
  (round, b, r) => console.log(`[r${round}] ${b.name}: single ${r.single}/s, ${CLIENTS} at once ${r.parallel}/s, bulk ${r.bulk} jobs/s`));
console.log(`\n${values.keyed ? "every job with a key of its own; " : ""}${values.flows ? "flows (single and 16 at once: a flow of 3 jobs per call; bulk: a flow of 1,000 jobs per call, counted in jobs); " : ""}no worker running; medians of ${values.rounds} interleaved rounds\n`);
console.log(`| build | single/s | ${CLIENTS} at once /s | bulk (${BULK_SIZE}) jobs/s |`);
console.log("|---|---:|---:|---:|");
for (const [name, rs] of runs) {
  const m = (k) => Math.round(median(rs.map((r) => r[k]))).toLocaleString("en-US");
  console.log(`| ${name} | ${m("single")} | ${m("parallel")} | ${m("bulk")} |`);
}
