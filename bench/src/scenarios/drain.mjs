// drain: N queued no-op jobs, then a worker at the shared concurrency. Timed
// from the first handler call to the moment the database shows every job
// finished (so completions still being written count), which leaves the
// worker's start-up out of the rate. Also the CPU per job, from the worker's
// start to that moment: the worker's process (this one: the system's worker
// runs in it) and Postgres (the bench database's backends and the server's
// own processes, where /proc can be read). On a machine where the two share
// the cores, their sum bounds the drain.
import { meterFor, pgUsPerJob } from "../scale/cpu.mjs";
import { now, until } from "../stats.mjs";
import { fill } from "./fill.mjs";

export async function drain(sys, cfg, { sql } = {}) {
  const n = cfg.drainJobs;
  await fill(sys, n, cfg.bulkSize);
  let count = 0;
  let first = 0;
  let last = 0;
  let resolveAll;
  const all = new Promise((r) => (resolveAll = r));
  const meter = sql ? await meterFor(sql) : null;
  meter?.start();
  const cpu0 = process.cpuUsage();
  const t0 = now();
  const worker = await sys.startWorker(() => {
    const t = now();
    if (count === 0) first = t;
    last = t;
    if (++count === n) resolveAll();
  });
  const timeoutMs = Math.max(120_000, n * 5);
  let timer;
  const finished = await Promise.race([all.then(() => true), new Promise((r) => (timer = setTimeout(() => r(false), timeoutMs)))]);
  clearTimeout(timer);
  let end = now();
  if (finished) {
    await until(async () => (await sys.remaining()) === 0, { every: 5, timeoutMs: 30_000, what: "the last completions" });
    end = now();
  }
  // (before the stop: a worker's pool ends with it, and its backends' CPU with them)
  const pg = meter?.stop();
  const own = process.cpuUsage(cpu0);
  await worker.stop();
  const seconds = (end - first) / 1000;
  return {
    jobs: n,
    handled: count,
    finished,
    jobsPerSec: Math.round((finished ? n : count) / seconds),
    handlerJobsPerSec: count > 1 ? Math.round((count - 1) / ((last - first) / 1000)) : null,
    startToFirstJobMs: Math.round((first - t0) * 10) / 10,
    seconds: Math.round(seconds * 1000) / 1000,
    workerCpuUsPerJob: count > 0 ? Math.round(((own.user + own.system) / count) * 10) / 10 : null,
    pgCpuUsPerJob: pgUsPerJob(pg, count),
  };
}
