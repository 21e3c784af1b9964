// A worker started before its backlog: builds of pgpulse side by side
// (--pgpulse-dir name=DIR,...), interleaved for --rounds rounds. Per run, in a
// process of its own: a fresh schema, a worker (concurrency 16) that runs
// --warm single jobs first (its connections plan their statements on a table of
// a few rows), then N no-op jobs enqueued in calls of 1,000 while it runs.
// Reported: jobs/s from the first of those enqueues to the last end written
// (as the worker's events report it),
// the rows of the jobs table read sequentially, the most ends the worker had
// run but not yet written (sampled at each claim), and how long the stop took.
// A connection that kept a plan made on the small table shows here as rows read
// sequentially, ends falling behind, and a slow drain.
//   npm --prefix bench run late-backlog -- --pgpulse-dir before=/tmp/a,after=/tmp/b --rounds 4
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
    jobs: { type: "string", default: "100000" },
    warm: { type: "string", default: "50" },
    "database-url": { type: "string", default: process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/pgpulse_bench" },
    child: { type: "string" },
  },
});
const url = values["database-url"];
const n = Number(values.jobs);
const warm = Number(values.warm);

if (values.child !== undefined) {
  const pp = await loadPgpulse(values.child || null);
  const schema = `late_backlog_${process.pid}`;
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  await sql.unsafe(`drop schema if exists "${schema}" cascade`);
  await pp.migrate({ connection: url, schema });
  const queue = pp.createQueue({ connection: url, schema });
  let handled = 0;
  let target = warm;
  let reached;
  let done = new Promise((resolve) => (reached = resolve));
  const worker = pp.createWorker({
    connection: url, schema, concurrency: 16, logger: "error",
    tasks: { noop: async () => void (++handled === target && reached()) },
  });
  let written = 0;
  let behind = 0;
  worker.on("job:completed", () => written++);
  worker.on("worker:claimed", () => (behind = Math.max(behind, handled - written)));
  await worker.start();
  for (let i = 0; i < warm; i++) await queue.enqueue("noop", { i });
  await done;
  const reads = async () => (await sql`select coalesce(seq_tup_read, 0)::int8 as r from pg_stat_user_tables where schemaname = ${schema} and relname = 'jobs'`)[0].r;
  target = warm + n;
  done = new Promise((resolve) => (reached = resolve));
  const t0 = performance.now();
  for (let i = 0; i < n; i += 1000) {
    await queue.enqueueMany(Array.from({ length: Math.min(1000, n - i) }, (_, k) => ({ task: "noop", payload: { i: i + k } })));
  }
  await done;
  // every end written (the worker's events: a query of the table here would read it too)
  while (written < warm + n) await new Promise((r) => setTimeout(r, 5));
  const ms = performance.now() - t0;
  const s0 = performance.now();
  await worker.stop();
  const stopMs = performance.now() - s0;
  // (the statistics lag: read once the worker's backends have ended and reported)
  await new Promise((r) => setTimeout(r, 700));
  const seqRows = Number(await reads());
  await queue.close();
  await sql.unsafe(`drop schema "${schema}" cascade`);
  await sql.end();
  console.log(JSON.stringify({ jobsPerSec: Math.round((n / ms) * 1000), seqRows, behind, stopMs: Math.round(stopMs) }));
  process.exit(0);
}

await ensureDatabase(url);
const args = ["--jobs", String(n), "--warm", String(warm), "--database-url", url];
const runs = runInterleaved(parseBuilds(values["pgpulse-dir"]), Number(values.rounds), fileURLToPath(import.meta.url), args, (round, b, r) =>
  console.log(`[r${round}] ${b.name}: ${r.jobsPerSec} jobs/s, ${r.seqRows} rows read sequentially, ends up to ${r.behind} behind, stop ${r.stopMs} ms`));
console.log(`\n${warm} single jobs, then ${n} enqueued in calls of 1,000 while the worker runs (concurrency 16); medians of ${values.rounds} interleaved rounds\n`);
console.log("| build | jobs/s | rows of jobs read sequentially | most ends not yet written | stop | all runs, jobs/s |");
console.log("|---|---:|---:|---:|---:|---|");
for (const [name, rs] of runs) {
  const m = (k) => Math.round(median(rs.map((r) => r[k])));
  console.log(`| ${name} | ${m("jobsPerSec").toLocaleString("en-US")} | ${m("seqRows").toLocaleString("en-US")} | ${m("behind").toLocaleString("en-US")} | ${m("stopMs")} ms | ${rs.map((r) => r.jobsPerSec).join(", ")} |`);
}
