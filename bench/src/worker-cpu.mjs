// The worker's own CPU per job, without Postgres or the driver: the parts a
// worker is made of (claimer, runner, finish batcher, progress and log
// writers), wired as src/worker/parts.ts wires them (with the build's own
// refillHooks(), or for a build from before it, a copy of what it was), over a stand-in database
// whose answers come on the next turn of the event loop. A claim returns rows
// as postgres.js does (arrays of column values); a finish builds its
// statement's parameters, as the real one does, and answers "completed" for
// each. What it measures is pgpulse's JavaScript for a job, from claim rows to
// its end's write: the part of a drain's worker CPU the driver and the
// database do not account for.
//   npm --prefix bench run worker-cpu -- --pgpulse-dir before=/tmp/a,after=/tmp/b --rounds 6
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { claimStatements, parseBuilds, runInterleaved } from "./builds.mjs";
import { median } from "./stats.mjs";

const { values } = parseArgs({
  options: {
    "pgpulse-dir": { type: "string" },
    rounds: { type: "string", default: "6" },
    jobs: { type: "string", default: "1000000" },
    concurrency: { type: "string", default: "16" },
    child: { type: "string" },
  },
});
const n = Number(values.jobs);
const concurrency = Number(values.concurrency);

if (values.child !== undefined) {
  const root = values.child ? values.child.replace(/\/$/, "") : fileURLToPath(new URL("../..", import.meta.url));
  const load = (p) => import(`${root}/dist/${p}`);
  const [{ JobRunner }, { FinishBatcher }, { ProgressWriter }, { LogWriter }, { Claimer }, { QueueStatsRecorder }, { claimOps, claimSql }, { finishOps, finishSql, progressSql },
    { Emitter }, { systemClock }, { silentLogger }, { refillHooks }] = await Promise.all(["worker/runner.js", "worker/finisher.js", "worker/progress.js", "worker/logs.js",
    "worker/claimer.js", "worker/queue-stats.js", "db/claim.js", "db/finish.js", "shared/events.js", "shared/clock.js", "shared/logger.js", "worker/parts.js"].map(load));
  const nextTurn = () => new Promise((r) => setImmediate(r));
  let nextId = 1;
  const t0us = Date.now() * 1000;
  // The stand-in connection: claim rows, finish answers, nothing else written.
  const handle = {
    unsafe(text, params) {
      if (text.includes("claim_rows(")) {
        const limit = Math.min(params[2], n - nextId + 1);
        const ahead = params[5];
        const rows = [];
        for (let i = 0; i < limit; i++) {
          const id = nextId++;
          const waiting = i >= limit - ahead ? String(t0us + id) : null;
          // the row as the build's claim statement gives it: its numbers packed in one text, or a column each
          rows.push(text.includes("concat(")
            ? [`${id},0,1,25,,${t0us},${t0us + id},${waiting ?? ""},`, "noop", "default", null, { i: id }, null]
            : [String(id), "noop", "default", { i: id }, 0, 1, 25, null, null, String(t0us), String(t0us + id), waiting, null, null]);
        }
        return { values: async () => (await nextTurn(), rows) };
      }
      if (text.includes(".finish(")) {
        const count = params[1].split(",").length;
        // raw (a build that reads the answer by position) or as objects
        return { values: async () => (await nextTurn(), [["c".repeat(count)]]), then: (f, r) => nextTurn().then(() => [{ statuses: "c".repeat(count) }]).then(f, r) };
      }
      return nextTurn().then(() => []);
    },
  };
  // (a pool, as the worker has: its claim reads payloads as the driver parses them)
  const c = { handle, pool: handle, schema: "bench", q: `"bench"`, prepare: true };
  const db = { ...claimOps(c, claimStatements(claimOps, claimSql, c.q)), ...finishOps(c, { finish: finishSql(c.q), progress: progressSql(c.q) }), logAppend: async () => {} };
  const events = new Emitter();
  const stats = { completed: 0, failed: 0, retried: 0, cancelled: 0, released: 0, snoozed: 0 };
  let handled = 0;
  let allDone;
  const done = new Promise((r) => (allDone = r));
  const tasks = new Map([["noop", { name: "noop", handler: async () => {}, settings: {} }]]);
  const fail = (...e) => { console.error(...e); process.exit(1); };
  const finisher = new FinishBatcher(db, "w", 2, () => null, fail);
  const progress = new ProgressWriter(db, "w", 1000, 2, fail);
  const logs = new LogWriter(db, 1000, 100, 10_000, fail);
  const runner = new JobRunner({
    workerId: "w", concurrency, tasks, logger: silentLogger, events, stats, queueStats: new QueueStatsRecorder(), finisher, progress, logs, clock: systemClock,
    parents: async () => [], middleware: [],
    onSlotFree: () => refill.slotFreed(),
    onWritten(outcome, result) {
      if (++handled === n) allDone();
      refill.written(outcome, result);
    },
  });
  const claimer = new Claimer({
    db, workerId: "w", queues: ["default"], tasks: ["noop"], concurrency, runner, clock: systemClock, dbNow: () => null,
    logger: silentLogger, events, onError: fail, pollIntervalMs: 60_000, open: () => true, driven: () => false,
  });
  // Builds from before refillHooks() (src/worker/parts.ts) wired the same inline: this is what they did.
  const refill = refillHooks ? refillHooks(runner, claimer, finisher) : {
    slotFreed() {
      if (claimer.backlog && runner.waiting.size <= runner.prefetch() / 2) void claimer.request("slots freed");
      if (runner.size === 0 && runner.waiting.size === 0) void finisher.flush();
    },
    written() {
      if (claimer.backlog) void claimer.request("slots freed");
    },
  };
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  void claimer.request("start");
  await done;
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  console.log(JSON.stringify({
    jobsPerSec: Math.round((n / ms) * 1000),
    cpuUsPerJob: Math.round(((cpu.user + cpu.system) / n) * 100) / 100,
    heapMb: Math.round(process.memoryUsage().heapUsed / 1e6),
  }));
  process.exit(0);
}

const entries = parseBuilds(values["pgpulse-dir"]);
const args = ["--jobs", String(n), "--concurrency", String(concurrency)];
const runs = runInterleaved(entries, Number(values.rounds), fileURLToPath(import.meta.url), args, (round, b, r) =>
  console.log(`[r${round}] ${b.name}: ${r.cpuUsPerJob} us of CPU per job (${r.jobsPerSec} jobs/s)`));
console.log(`\n${n} no-op jobs through the worker's parts over a stand-in database, concurrency ${concurrency}; medians of ${values.rounds} interleaved rounds\n`);
console.log("| build | worker CPU per job | jobs/s | all runs, us per job |");
console.log("|---|---:|---:|---|");
for (const [name, rs] of runs) {
  const m = (k) => median(rs.map((r) => r[k]));
  console.log(`| ${name} | ${m("cpuUsPerJob").toFixed(2)} us | ${Math.round(m("jobsPerSec")).toLocaleString("en-US")} | ${rs.map((r) => r.cpuUsPerJob).join(", ")} |`);
}
