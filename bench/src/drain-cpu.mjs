// Where a drain's time goes: builds of pgpulse side by side (--pgpulse-dir
// name=DIR,...), each draining N no-op jobs with one worker in one process,
// interleaved for --rounds rounds (the order flips each round). Per run:
// jobs/s (from the worker's start to the database showing every job
// finished, looked at once every handler has run), the worker process's CPU (user and system), Postgres's CPU (/proc:
// the bench database's backends and the server's own processes) and the
// transactions committed. Medians per build.
//   npm --prefix bench run drain-cpu -- --pgpulse-dir before=/tmp/a,after=/tmp/b --rounds 6
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import postgres from "postgres";
import { parseBuilds, runInterleaved } from "./builds.mjs";
import { ensureDatabase } from "./db.mjs";
import { median } from "./stats.mjs";
import { CpuMeter, postmasterPid } from "./scale/cpu.mjs";
import { loadPgpulse } from "./systems/pgpulse.mjs";

const { values } = parseArgs({
  options: {
    "pgpulse-dir": { type: "string" },
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
  await sql.unsafe(`insert into "${schema}".jobs (task, payload) select 'noop', jsonb_build_object('i', g) from generate_series(1, ${n}) g`);
  await sql.unsafe(`vacuum analyze "${schema}".jobs`);
  const [{ data_directory: dataDirectory, db }] = await sql`select current_setting('data_directory') as data_directory, current_database() as db`;
  const [{ x: x0 }] = await sql`select xact_commit::int8 as x from pg_stat_database where datname = current_database()`;
  let handled = 0;
  let allHandled;
  const handledAll = new Promise((resolve) => (allHandled = resolve));
  const worker = pp.createWorker({
    connection: url, schema, concurrency, logger: "warn",
    tasks: { noop: async () => void (++handled === n && allHandled()) },
  });
  const meter = new CpuMeter({ postmaster: postmasterPid(dataDirectory), database: db });
  meter.start();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await worker.start();
  // Every handler ran; then the last ends land. (Polling the table meanwhile would
  // load the database the drain is measuring.)
  await handledAll;
  const left = () => sql.unsafe(`select count(*)::int as n from "${schema}".jobs where status in ('queued', 'running')`);
  while ((await left())[0].n > 0) await new Promise((r) => setTimeout(r, 5));
  const ms = performance.now() - t0;
  const node = process.cpuUsage(cpu0);
  const pg = meter.stop();
  await worker.stop();
  const [{ x: x1 }] = await sql`select xact_commit::int8 as x from pg_stat_database where datname = current_database()`;
  await sql.unsafe(`drop schema "${schema}" cascade`);
  await sql.end();
  console.log(JSON.stringify({
    jobsPerSec: Math.round((n / ms) * 1000),
    nodeCpuUsPerJob: Math.round(((node.user + node.system) / n) * 10) / 10,
    pgCpuUsPerJob: Math.round((((pg.benchDbMs + pg.serverMs) * 1000) / n) * 10) / 10,
    // (the statistics lag: read once the run's backends have reported)
    transactions: Number(x1) - Number(x0),
  }));
  process.exit(0);
}

await ensureDatabase(url);
const builds = parseBuilds(values["pgpulse-dir"]);
const args = ["--jobs", String(n), "--concurrency", String(concurrency), "--database-url", url];
const runs = runInterleaved(builds, Number(values.rounds), fileURLToPath(import.meta.url), args, (round, b, r) =>
  console.log(`[r${round}] ${b.name}: ${r.jobsPerSec} jobs/s, worker ${r.nodeCpuUsPerJob} us and Postgres ${r.pgCpuUsPerJob} us of CPU per job`));
console.log(`\n${n} no-op jobs, one worker, concurrency ${concurrency}; medians of ${values.rounds} interleaved rounds\n`);
console.log("| build | jobs/s | worker CPU per job | Postgres CPU per job | all runs, jobs/s |");
console.log("|---|---:|---:|---:|---|");
for (const [name, rs] of runs) {
  const m = (k) => Math.round(median(rs.map((r) => r[k])) * 10) / 10;
  console.log(`| ${name} | ${Math.round(m("jobsPerSec")).toLocaleString("en-US")} | ${m("nodeCpuUsPerJob")} us | ${m("pgCpuUsPerJob")} us | ${rs.map((r) => r.jobsPerSec).join(", ")} |`);
}
