// A bulk retry of N failed jobs (queue.retryJobs({ status: "failed" })): how
// long it takes, and how long it holds locks. Per round, in a fresh schema:
// N failed jobs (and --completed other rows, to make the table bigger) are
// inserted and vacuumed, then the retry runs while
// - a sampler (its own connection) reads pg_stat_activity every --sample-ms
//   and keeps the age of the retry's open transaction when it has a
//   transaction id (backend_xid: it has locked or changed rows): the longest seen
//   is how long the retry held row locks at a stretch (a lower bound: it
//   samples). The longest read-only statement (a batch's scan for ids) is
//   kept apart: it holds no row lock;
// - a writer (its own connection) updates random rows of the set one after
//   another (`set priority = priority`), as a worker's end or a cancel would:
//   its longest wait is the longest a concurrent writer was blocked;
// - each batch's time is read from onProgress (the client's view: its scan
//   and its locking statement, with their round trips).
// Prints one markdown table of medians over the rounds (and every round), and
// writes bench/results/<time>-bulk.{json,md}.
//   npm --prefix bench run bulk -- --jobs 100000 --rounds 3
import { mkdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import os from "node:os";
import postgres from "postgres";
import { ensureDatabase } from "./db.mjs";
import { median, sleep, summarize } from "./stats.mjs";
import { loadPgpulse } from "./systems/pgpulse.mjs";

const { values } = parseArgs({
  options: {
    "pgpulse-dir": { type: "string" },
    jobs: { type: "string", default: process.env.BENCH_BULK_JOBS ?? "100000" },
    completed: { type: "string", default: process.env.BENCH_BULK_COMPLETED ?? "0" },
    "batch-size": { type: "string", default: process.env.BENCH_BULK_BATCH_SIZE ?? "1000" },
    rounds: { type: "string", default: process.env.BENCH_BULK_ROUNDS ?? "3" },
    "sample-ms": { type: "string", default: "5" },
    "no-writer": { type: "boolean" },
    "database-url": { type: "string", default: process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/pgpulse_bench" },
    out: { type: "string", default: fileURLToPath(new URL("../results/", import.meta.url)) },
  },
});
const url = values["database-url"];
const n = Number(values.jobs);
const completed = Number(values.completed);
const batchSize = Number(values["batch-size"]);
const rounds = Number(values.rounds);
const sampleMs = Number(values["sample-ms"]);
const withWriter = !values["no-writer"];
const APP = "pgpulse bench bulk";

const pp = await loadPgpulse(values["pgpulse-dir"] ?? null);
await ensureDatabase(url);
const admin = postgres(url, { max: 1, onnotice: () => {} });
const [{ version }] = await admin`select current_setting('server_version') as version`;

async function round(r) {
  const schema = `bulk_${process.pid}_${r}`;
  const s = `"${schema}"`;
  await admin.unsafe(`drop schema if exists ${s} cascade`);
  await pp.migrate({ connection: url, schema });
  if (completed > 0) {
    await admin.unsafe(
      `insert into ${s}.jobs (task, queue, status, payload, finished_at, attempts)
       select 'sync', 'bulk', 'completed', jsonb_build_object('i', g), now(), 1 from generate_series(1, ${completed}) g`,
    );
  }
  await admin.unsafe(
    `insert into ${s}.jobs (task, queue, status, payload, finished_at, attempts, max_attempts, errors)
     select 'sync', 'bulk', 'failed', jsonb_build_object('i', g), now(), 3, 3,
       '[{"attempt":3,"at":"2026-11-29T10:00:00Z","name":"Error","message":"upstream timed out"}]'
     from generate_series(1, ${n}) g`,
  );
  await admin.unsafe(`vacuum analyze ${s}.jobs`);
  const [{ lo, hi }] = await admin.unsafe(`select min(id)::int8 as lo, max(id)::int8 as hi from ${s}.jobs where status = 'failed'`);

  const sql = postgres(url, { max: 2, onnotice: () => {}, connection: { application_name: APP } });
  const queue = pp.createQueue({ connection: sql, schema });
  let running = true;

  // The sampler: the age of the retry's open transaction, every sampleMs.
  const sampler = postgres(url, { max: 1, onnotice: () => {} });
  let longestLockingMs = 0;
  let longestReadMs = 0;
  let samples = 0;
  const sampling = (async () => {
    while (running) {
      const rows = await sampler.unsafe(
        `select extract(epoch from clock_timestamp() - xact_start) * 1000 as ms, backend_xid is not null as locking
         from pg_stat_activity
         where application_name = $1 and xact_start is not null and state <> 'idle'`,
        [APP],
      );
      samples++;
      for (const row of rows) {
        if (row.locking) longestLockingMs = Math.max(longestLockingMs, Number(row.ms));
        else longestReadMs = Math.max(longestReadMs, Number(row.ms));
      }
      await sleep(sampleMs);
    }
  })();

  // The writer: one row of the set at a time, as a worker or a cancel would touch it.
  const writer = postgres(url, { max: 1, onnotice: () => {} });
  const waits = [];
  const writing = (async () => {
    if (!withWriter) return;
    while (running) {
      const id = Number(lo) + Math.floor(Math.random() * (Number(hi) - Number(lo) + 1));
      const t = performance.now();
      await writer.unsafe(`update ${s}.jobs set priority = priority where id = $1`, [id]);
      waits.push(performance.now() - t);
      await sleep(1);
    }
  })();
  await sleep(50);

  const stamps = [];
  const t0 = performance.now();
  const result = await queue.retryJobs({ status: "failed" }, { batchSize, onProgress: () => stamps.push(performance.now()) });
  const totalMs = performance.now() - t0;
  running = false;
  await Promise.all([sampling, writing]);
  const batchMs = stamps.map((t, i) => t - (i === 0 ? t0 : stamps[i - 1]));
  const [{ queued }] = await admin.unsafe(`select count(*)::int as queued from ${s}.jobs where status = 'queued'`);
  await Promise.all([sql.end({ timeout: 5 }), sampler.end({ timeout: 5 }), writer.end({ timeout: 5 })]);
  await admin.unsafe(`drop schema ${s} cascade`);
  if (queued !== result.changed) throw new Error(`round ${r}: ${queued} jobs queued, but the retry says ${result.changed}`);
  return {
    totalMs: Math.round(totalMs),
    jobsPerSec: Math.round((result.changed / totalMs) * 1000),
    batches: result.batches,
    batch: summarize(batchMs),
    longestLockingMs: Math.round(longestLockingMs * 10) / 10,
    longestReadMs: Math.round(longestReadMs * 10) / 10,
    samples,
    writer: withWriter ? summarize(waits) : null,
    result: { matched: result.matched, changed: result.changed, skipped: result.skipped, reasons: result.reasons },
  };
}

const runs = [];
for (let r = 1; r <= rounds; r++) {
  const run = await round(r);
  runs.push(run);
  console.log(
    `[round ${r}] ${run.result.changed.toLocaleString("en-US")} retried in ${run.totalMs} ms (${run.jobsPerSec.toLocaleString("en-US")} jobs/s), ` +
      `${run.batches} batches: p50 ${run.batch.p50} ms, max ${run.batch.max} ms; longest transaction holding locks seen ${run.longestLockingMs} ms, ` +
      `longest scan seen ${run.longestReadMs} ms` +
      (run.writer ? `; writer: ${run.writer.n} updates, p99 ${run.writer.p99} ms, max ${run.writer.max} ms` : ""),
  );
}
await admin.end({ timeout: 5 });

const m = (f) => median(runs.map(f));
const fmt = (x) => (x === null ? "–" : String(Math.round(x * 10) / 10));
// (the name says what differs from the defaults, so that runs of one minute keep their files)
const variant = `${completed ? `-among${completed}` : ""}${batchSize !== 1000 ? `-batch${batchSize}` : ""}`;
const stamp = `${new Date().toISOString().slice(0, 16).replace(/:/g, "")}${variant}`;
const setup =
  `${n.toLocaleString("en-US")} failed jobs${completed ? ` among ${completed.toLocaleString("en-US")} completed` : ""}, ` +
  `batchSize ${batchSize}, ${rounds} round(s), medians; ${os.cpus().length} cores, Node ${process.versions.node}, PostgreSQL ${version}` +
  (withWriter ? "; a writer updating random rows of the set throughout" : "");
const md = [
  `# Bulk retry, ${new Date().toISOString().slice(0, 10)}`,
  "",
  `\`npm --prefix bench run bulk -- --jobs ${n} --batch-size ${batchSize} --rounds ${rounds}${completed ? ` --completed ${completed}` : ""}\``,
  "",
  setup,
  "",
  "| | total ms | jobs/s | batches | batch p50 / p99 / max ms | longest transaction holding row locks, ms | longest scan (no locks), ms | writer wait p50 / p99 / max ms |",
  "|---|---:|---:|---:|---:|---:|---:|---:|",
  `| median | ${fmt(m((r) => r.totalMs))} | ${fmt(m((r) => r.jobsPerSec))} | ${fmt(m((r) => r.batches))} | ` +
    `${fmt(m((r) => r.batch.p50))} / ${fmt(m((r) => r.batch.p99))} / ${fmt(m((r) => r.batch.max))} | ${fmt(m((r) => r.longestLockingMs))} | ${fmt(m((r) => r.longestReadMs))} | ` +
    (withWriter ? `${fmt(m((r) => r.writer.p50))} / ${fmt(m((r) => r.writer.p99))} / ${fmt(m((r) => r.writer.max))} |` : "– |"),
  ...runs.map(
    (r, i) =>
      `| round ${i + 1} | ${r.totalMs} | ${r.jobsPerSec} | ${r.batches} | ${r.batch.p50} / ${r.batch.p99} / ${r.batch.max} | ${r.longestLockingMs} | ${r.longestReadMs} | ` +
      (r.writer ? `${r.writer.p50} / ${r.writer.p99} / ${r.writer.max} |` : "– |"),
  ),
  "",
].join("\n");
console.log(`\n${md}`);
mkdirSync(values.out, { recursive: true });
writeFileSync(`${values.out}/${stamp}-bulk.json`, JSON.stringify({ setup, n, completed, batchSize, rounds, version, runs }, null, 2));
writeFileSync(`${values.out}/${stamp}-bulk.md`, md);
console.log(`wrote ${values.out}${stamp}-bulk.{json,md}`);
