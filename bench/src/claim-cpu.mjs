// What a claim costs the worker and Postgres per job, builds side by side: one
// claim of --batch jobs through the build's own database layer
// (dist/db/claim.js: its statement and its reading of the rows), in a
// transaction rolled back each time, so every claim finds the same jobs.
// --claims claims per run, each build in a process of its own, interleaved for
// --rounds rounds; medians of the worker's CPU per job (the driver's reading
// of the rows included) and Postgres's (/proc: the bench database's backends
// and the server's own processes).
//   npm --prefix bench run claim-cpu -- --pgpulse-dir before=/tmp/a,after=/tmp/b --rounds 6
import { fileURLToPath, pathToFileURL } from "node:url";
import { join } from "node:path";
import { parseArgs } from "node:util";
import postgres from "postgres";
import { claimStatements, parseBuilds, runInterleaved } from "./builds.mjs";
import { ensureDatabase } from "./db.mjs";
import { median } from "./stats.mjs";
import { CpuMeter, postmasterPid } from "./scale/cpu.mjs";
import { loadPgpulse } from "./systems/pgpulse.mjs";

const { values } = parseArgs({
  options: {
    "pgpulse-dir": { type: "string" },
    rounds: { type: "string", default: "6" },
    batch: { type: "string", default: "260" },
    claims: { type: "string", default: "400" },
    "database-url": { type: "string", default: process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/pgpulse_bench" },
    child: { type: "string" },
  },
});
const url = values["database-url"];
const batch = Number(values.batch);
const claims = Number(values.claims);

if (values.child !== undefined) {
  const pp = await loadPgpulse(values.child || null);
  const root = values.child || fileURLToPath(new URL("../..", import.meta.url));
  const { claimOps, claimSql } = await import(pathToFileURL(join(root, "dist", "db", "claim.js")).href);
  const schema = `claim_cpu_${process.pid}`;
  const q = `"${schema}"`;
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  await pp.migrate({ connection: url, schema });
  await sql.unsafe(`insert into ${q}.jobs (task, payload) select 'noop', jsonb_build_object('i', g) from generate_series(1, ${batch}) g`);
  await sql.unsafe(`insert into ${q}.workers (id, queues, tasks, concurrency) values ('w', '{default}', '{noop}', 16)`);
  await sql.unsafe(`vacuum analyze ${q}.jobs`);
  const text = claimStatements(claimOps, claimSql, q);
  class Undo extends Error {}
  // as a draining worker claims: most of the batch ahead of its 16 slots
  const args = { queues: ["default"], tasks: ["noop"], limit: batch, ahead: Math.max(0, batch - 16), workerId: "w", now: null };
  const claimOnce = async () => {
    let n = 0;
    await sql.begin(async (tx) => {
      // (pool set, as in a worker: the claim that reads payloads as the driver parses them)
      n = (await claimOps({ handle: tx, pool: sql, schema, q, prepare: true }, text).jobClaim(args)).jobs.length;
      throw new Undo();
    }).catch((error) => {
      if (!(error instanceof Undo)) throw error;
    });
    if (n !== batch) throw new Error(`a claim took ${n} jobs of ${batch}`);
  };
  for (let i = 0; i < 30; i++) await claimOnce();
  const [{ data_directory: dataDirectory, db }] = await sql`select current_setting('data_directory') as data_directory, current_database() as db`;
  const meter = new CpuMeter({ postmaster: postmasterPid(dataDirectory), database: db });
  meter.start();
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < claims; i++) await claimOnce();
  const node = process.cpuUsage(cpu0);
  const pg = meter.stop();
  await sql.unsafe(`drop schema ${q} cascade`);
  await sql.end();
  const jobs = claims * batch;
  console.log(JSON.stringify({
    nodeCpuUsPerJob: Math.round(((node.user + node.system) / jobs) * 100) / 100,
    pgCpuUsPerJob: Math.round((((pg.benchDbMs + pg.serverMs) * 1000) / jobs) * 100) / 100,
  }));
  process.exit(0);
}

await ensureDatabase(url);
const args = ["--batch", String(batch), "--claims", String(claims), "--database-url", url];
const runs = runInterleaved(parseBuilds(values["pgpulse-dir"]), Number(values.rounds), fileURLToPath(import.meta.url), args, (round, b, r) =>
  console.log(`[r${round}] ${b.name}: worker ${r.nodeCpuUsPerJob} us, Postgres ${r.pgCpuUsPerJob} us of CPU per job claimed`));
console.log(`\n${claims} claims of ${batch} jobs each, rolled back; medians of ${values.rounds} interleaved rounds\n`);
console.log("| build | worker CPU per job | Postgres CPU per job | all runs, worker us per job |");
console.log("|---|---:|---:|---|");
for (const [name, rs] of runs) {
  const m = (k) => median(rs.map((r) => r[k])).toFixed(2);
  console.log(`| ${name} | ${m("nodeCpuUsPerJob")} us | ${m("pgCpuUsPerJob")} us | ${rs.map((r) => r.nodeCpuUsPerJob).join(", ")} |`);
}
