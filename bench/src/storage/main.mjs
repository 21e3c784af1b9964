// The storage study: what Postgres spends per job, for pgpulse's statements
// and for other ways to store a queue that keeps every job's row (designs.mjs),
// measured side by side with no framework in the way. Each (round, design)
// runs in a fresh schema: N queued jobs, VACUUM ANALYZE, then `loops` loops
// (one connection each) end the previous batch and claim the next until the
// queue is empty. Reports jobs/s, Postgres CPU per job (/proc: the bench
// database's backends and the server's own processes), and how many of the
// updates of the jobs table were HOT (pg_stat_user_tables).
//   npm --prefix bench run storage [-- --rounds 3 --jobs 100000 --designs a,b]
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import postgres from "postgres";
import { admin, ensureDatabase, serverFacts } from "../db.mjs";
import { median } from "../stats.mjs";
import { CpuMeter, pgUsPerJob, postmasterPid } from "../scale/cpu.mjs";
import { DESIGNS } from "./designs.mjs";

const { values } = parseArgs({
  options: {
    designs: { type: "string" },
    rounds: { type: "string", default: "3" },
    jobs: { type: "string", default: "100000" },
    batch: { type: "string", default: "500" },
    loops: { type: "string", default: "2" },
    fillfactor: { type: "string", default: "60" },
    "database-url": { type: "string", default: process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/pgpulse_bench" },
    "pgpulse-dir": { type: "string" },
    out: { type: "string", default: new URL("../../results/", import.meta.url).pathname },
  },
});
const names = values.designs ? values.designs.split(",") : Object.keys(DESIGNS);
for (const n of names) if (!DESIGNS[n]) throw new Error(`unknown design ${n}; known: ${Object.keys(DESIGNS).join(", ")}`);
const [rounds, n, batch, loops, fillfactor] = ["rounds", "jobs", "batch", "loops", "fillfactor"].map((k) => Number(values[k]));
const url = values["database-url"];

await ensureDatabase(url);
const sql = admin(url);
const [{ data_directory: dataDirectory, db }] = await sql`select current_setting('data_directory') as data_directory, current_database() as db`;
const postmaster = postmasterPid(dataDirectory);
const runs = [];

async function one(name, round) {
  const schema = `storage_${name.replaceAll("-", "_")}_${round}`;
  const q = `"${schema}"`;
  await sql.unsafe(`drop schema if exists ${q} cascade`);
  await sql.unsafe(`create schema ${q}`);
  // the loops' connections: prepared statements, as the worker's
  const work = postgres(url, { max: loops, onnotice: () => {}, connection: { application_name: "pgpulse-bench storage" } });
  const run = (text, params) => work.unsafe(text, params, { prepare: true });
  try {
    const design = await DESIGNS[name]({ sql, url, schema, q, n, batch, pgpulseDir: values["pgpulse-dir"], run, fillfactor });
    for (let loop = 0; loop < loops; loop++) await design.setupLoop?.(loop);
    const tables = await sql.unsafe(`select relname from pg_stat_user_tables where schemaname = $1`, [schema]);
    for (const t of tables) await sql.unsafe(`vacuum analyze ${q}."${t.relname}"`);
    const before = await updates(schema, design.table);
    const meter = new CpuMeter({ postmaster, database: db });
    meter.start();
    const t0 = performance.now();
    let claimed = 0;
    await Promise.all(
      Array.from({ length: loops }, async (_, loop) => {
        let prev = [];
        for (;;) {
          const rows = await design.step(prev, loop);
          claimed += rows.length;
          if (rows.length === 0) break;
          prev = rows;
        }
      }),
    );
    const ms = performance.now() - t0;
    const cpu = meter.stop();
    if (claimed !== n) throw new Error(`${name}: claimed ${claimed} of ${n}`);
    await work.end({ timeout: 5 }); // a backend's statistics are flushed when it exits
    const after = await updatesSettled(schema, design.table, before);
    const r = {
      design: name, round, jobsPerSec: Math.round((n / ms) * 1000),
      pgCpuUsPerJob: pgUsPerJob(cpu, n),
      updates: after.upd - before.upd, hotUpdates: after.hot - before.hot,
    };
    r.hotShare = r.updates > 0 ? Math.round((r.hotUpdates / r.updates) * 100) / 100 : null;
    console.log(`[r${round}] ${name}: ${r.jobsPerSec} jobs/s, ${r.pgCpuUsPerJob} us of Postgres CPU per job, HOT ${r.hotUpdates}/${r.updates}`);
    return r;
  } finally {
    await work.end({ timeout: 5 });
    await sql.unsafe(`drop schema if exists ${q} cascade`);
  }
}

async function updates(schema, table) {
  const [r] = await sql.unsafe(
    `select coalesce(n_tup_upd, 0)::int8 as upd, coalesce(n_tup_hot_upd, 0)::int8 as hot from pg_stat_user_tables where schemaname = $1 and relname = $2`,
    [schema, table],
  );
  return { upd: Number(r?.upd ?? 0), hot: Number(r?.hot ?? 0) };
}

/** The counters once the loops' exited backends have flushed theirs (they report every update at exit). */
async function updatesSettled(schema, table, before) {
  const want = n * 2; // every design updates each row of its jobs table twice
  for (let i = 0; i < 100; i++) {
    const now = await updates(schema, table);
    if (now.upd - before.upd >= want || table === null) return now;
    await new Promise((r) => setTimeout(r, 50));
  }
  return updates(schema, table);
}

const started = new Date();
for (let round = 1; round <= rounds; round++) {
  // rotate the order each round, so no design always runs on a warm (or cold) server
  const order = names.map((_, i) => names[(i + round - 1) % names.length]);
  for (const name of order) runs.push(await one(name, round));
}
const facts = await serverFacts(sql);
await sql.end({ timeout: 5 });

const rows = names.map((name) => {
  const mine = runs.filter((r) => r.design === name);
  return {
    design: name,
    jobsPerSec: median(mine.map((r) => r.jobsPerSec)),
    pgCpuUsPerJob: median(mine.map((r) => r.pgCpuUsPerJob)),
    hotShare: median(mine.map((r) => r.hotShare ?? 0)),
  };
});
const stamp = started.toISOString().slice(0, 16).replace(":", "");
const md = [
  `# Storage study, ${started.toISOString()}`,
  "",
  `Command: \`npm --prefix bench run storage -- ${process.argv.slice(2).join(" ")}\``.replace(/ -- `$/, "`"),
  "",
  `Machine: ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}; ${facts.version.split(" on ")[0]}, fsync ${facts.fsync}, synchronous_commit ${facts.synchronous_commit}, shared_buffers ${facts.shared_buffers}.`,
  "",
  `${n} jobs, ${loops} loops, batches of ${batch}, medians of ${rounds} round(s); wide-table fillfactor ${fillfactor} (narrow designs).`,
  "",
  "| design | jobs/s (SQL only) | Postgres CPU per job | HOT updates |",
  "|---|---:|---:|---:|",
  ...rows.map((r) => `| ${r.design} | ${r.jobsPerSec.toLocaleString("en-US")} | ${r.pgCpuUsPerJob} us | ${Math.round(r.hotShare * 100)}% |`),
  "",
].join("\n");
mkdirSync(values.out, { recursive: true });
writeFileSync(join(values.out, `${stamp}-storage.json`), JSON.stringify({ started, facts, runs, rows }, null, 2));
writeFileSync(join(values.out, `${stamp}-storage.md`), md);
console.log(`\n${md}`);
