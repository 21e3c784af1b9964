// Where a drain's time goes: builds of pgpulse side by side (--pgpulse-dir
// name=DIR,...), and storage designs (--designs, src/drain-designs.mjs), each
// draining N no-op jobs with one worker in one process, interleaved for
// --rounds rounds (the order flips each round). Per run: jobs/s (from the
// worker's start to the database showing every job finished, looked at once
// every handler has run), the worker process's CPU (user and system),
// Postgres's CPU (/proc: the bench database's backends and the server's own
// processes), the transactions committed and the share of the jobs table's
// updates that were HOT; and the same rate and CPU from the first claim's
// return to the last handler (the steady drain, without the worker's start).
// Medians per build and design.
//   npm --prefix bench run drain-cpu -- --pgpulse-dir before=/tmp/a,after=/tmp/b --rounds 6
//   npm --prefix bench run drain-cpu -- --designs pgpulse,narrow-queued --rounds 4
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import postgres from "postgres";
import { parseBuilds, runInterleaved } from "./builds.mjs";
import { applyDesign, loadDesign } from "./drain-designs.mjs";
import { ensureDatabase } from "./db.mjs";
import { median } from "./stats.mjs";
import { CpuMeter, pgUsPerJob, postmasterPid } from "./scale/cpu.mjs";
import { loadPgpulse } from "./systems/pgpulse.mjs";

const { values } = parseArgs({
  options: {
    "pgpulse-dir": { type: "string" },
    designs: { type: "string", default: "pgpulse" },
    design: { type: "string", default: "pgpulse" },
    rounds: { type: "string", default: "6" },
    jobs: { type: "string", default: "100000" },
    concurrency: { type: "string", default: "16" },
    "database-url": { type: "string", default: process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/pgpulse_bench" },
    child: { type: "string" },
  },
});
const url = values["database-url"];
const n = Number(values.jobs);
const concurrency = Number(values.concurrency);

if (values.child !== undefined) {
  // One run, in a process of its own: prints one JSON line.
  const pp = await loadPgpulse(values.child || null);
  const schema = `drain_cpu_${process.pid}`;
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  await sql.unsafe(`drop schema if exists "${schema}" cascade`);
  await pp.migrate({ connection: url, schema });
  await applyDesign(sql, values.design, schema, values.child);
  await sql.unsafe(`insert into "${schema}".jobs (task, payload) select 'noop', jsonb_build_object('i', g) from generate_series(1, ${n}) g`);
  await loadDesign(sql, values.design, schema);
  await sql.unsafe(`vacuum analyze "${schema}".jobs`);
  const updates = async () => (await sql`select n_tup_upd::int8 as u, n_tup_hot_upd::int8 as h from pg_stat_user_tables where schemaname = ${schema} and relname = 'jobs'`)[0];
  const u0 = await updates();
  const [{ data_directory: dataDirectory, db }] = await sql`select current_setting('data_directory') as data_directory, current_database() as db`;
  const [{ x: x0 }] = await sql`select xact_commit::int8 as x from pg_stat_database where datname = current_database()`;
  let handled = 0;
  let allHandled;
  const handledAll = new Promise((resolve) => (allHandled = resolve));
  const worker = pp.createWorker({
    connection: url, schema, concurrency, logger: "warn",
    tasks: { noop: async () => void (++handled === n && allHandled()) },
  });
  const pm = postmasterPid(dataDirectory);
  const meter = new CpuMeter({ postmaster: pm, database: db });
  // The steady drain: from the first claim's return (the worker started, its
  // statements prepared) to the last handler.
  const steadyMeter = new CpuMeter({ postmaster: pm, database: db });
  let steady;
  worker.on("worker:claimed", (e) => {
    if (steady || e.jobs.length === 0) return;
    steadyMeter.start();
    steady = { t: performance.now(), cpu: process.cpuUsage() };
  });
  meter.start();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await worker.start();
  // Every handler ran; then the last ends land. (Polling the table meanwhile would
  // load the database the drain is measuring.)
  await handledAll;
  const steadyMs = performance.now() - steady.t;
  const steadyNode = process.cpuUsage(steady.cpu);
  const steadyPg = steadyMeter.stop();
  // (every job: the first claim's are handled after it returned)
  const steadyJobs = n;
  const left = () => sql.unsafe(`select count(*)::int as n from "${schema}".jobs where status in ('queued', 'running')`);
  while ((await left())[0].n > 0) await new Promise((r) => setTimeout(r, 5));
  const ms = performance.now() - t0;
  const node = process.cpuUsage(cpu0);
  const pg = meter.stop();
  await worker.stop();
  // (the statistics lag: read once the run's backends have reported)
  await new Promise((r) => setTimeout(r, 600));
  const u1 = await updates();
  const [{ x: x1 }] = await sql`select xact_commit::int8 as x from pg_stat_database where datname = current_database()`;
  await sql.unsafe(`drop schema "${schema}" cascade`);
  await sql.end();
  console.log(JSON.stringify({
    jobsPerSec: Math.round((n / ms) * 1000),
    nodeCpuUsPerJob: Math.round(((node.user + node.system) / n) * 10) / 10,
    pgCpuUsPerJob: pgUsPerJob(pg, n),
    transactions: Number(x1) - Number(x0),
    hotShare: Math.round((Number(u1.h - u0.h) / Math.max(1, Number(u1.u - u0.u))) * 100) / 100,
    steadyJobsPerSec: Math.round((steadyJobs / steadyMs) * 1000),
    steadyNodeCpuUsPerJob: Math.round(((steadyNode.user + steadyNode.system) / steadyJobs) * 10) / 10,
    steadyPgCpuUsPerJob: pgUsPerJob(steadyPg, steadyJobs),
  }));
  process.exit(0);
}

await ensureDatabase(url);
const designs = values.designs.split(",");
// Each build with each design; named by the build alone when there is one design, by both when several.
const entries = parseBuilds(values["pgpulse-dir"]).flatMap((b) =>
  designs.map((d) => ({ name: designs.length > 1 ? `${b.name} ${d}` : b.name, dir: b.dir, args: ["--design", d] })));
const args = ["--jobs", String(n), "--concurrency", String(concurrency), "--database-url", url];
const runs = runInterleaved(entries, Number(values.rounds), fileURLToPath(import.meta.url), args, (round, b, r) =>
  console.log(`[r${round}] ${b.name}: ${r.jobsPerSec} jobs/s (steady ${r.steadyJobsPerSec}), worker ${r.nodeCpuUsPerJob} us and Postgres ${r.pgCpuUsPerJob} us of CPU per job, HOT ${r.hotShare}`));
console.log(`\n${n} no-op jobs, one worker, concurrency ${concurrency}; medians of ${values.rounds} interleaved rounds`);
console.log("(steady: from the first claim's return to the last handler)\n");
console.log("| build | jobs/s | worker CPU per job | Postgres CPU per job | steady jobs/s | steady worker CPU | steady Postgres CPU | HOT updates | all runs, jobs/s |");
console.log("|---|---:|---:|---:|---:|---:|---:|---:|---|");
for (const [name, rs] of runs) {
  const m = (k) => Math.round(median(rs.map((r) => r[k])) * 100) / 100;
  const us = (k) => `${Math.round(m(k) * 10) / 10} us`;
  const rate = (k) => Math.round(m(k)).toLocaleString("en-US");
  console.log(`| ${name} | ${rate("jobsPerSec")} | ${us("nodeCpuUsPerJob")} | ${us("pgCpuUsPerJob")} | ${rate("steadyJobsPerSec")} | ${us("steadyNodeCpuUsPerJob")} | ${us("steadyPgCpuUsPerJob")} | ${Math.round(m("hotShare") * 100)}% | ${rs.map((r) => r.jobsPerSec).join(", ")} |`);
}
