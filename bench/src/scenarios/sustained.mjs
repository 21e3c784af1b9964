// sustained: a producer enqueues `sustainedRate` single jobs per second for
// `sustainedSeconds` while the worker runs; end-to-end latency per job, the
// size of the system's tables (with indexes and TOAST) before and after, and
// Postgres's CPU per job over the load (the bench database's backends and the
// server's own processes, from /proc: what every worker and producer of a
// fleet share). Where /proc cannot be read, the CPU is left out.
import { schemaBytes, schemaTuples } from "../db.mjs";
import { meterFor, pgUsPerJob } from "../scale/cpu.mjs";
import { now, sleep, summarize, until } from "../stats.mjs";

const MAX_OUTSTANDING = 2000; // enqueues in flight before the producer skips ticks

export async function sustained(sys, cfg, { sql }) {
  const rate = cfg.sustainedRate;
  const total = Math.round(rate * cfg.sustainedSeconds);
  const latencies = new Array(total).fill(null);
  const sentAt = new Array(total).fill(null); // when the enqueue was called
  const committedAt = new Array(total).fill(null); // when it returned
  const ranAt = new Array(total).fill(null);
  let received = 0;
  let warm = 0;
  const worker = await sys.startWorker((p) => {
    if (p.warm) return void warm++;
    if (latencies[p.i] === null) received++;
    ranAt[p.i] = now();
    latencies[p.i] = ranAt[p.i] - p.t;
  });
  for (let i = 0; i < 100; i++) await sys.enqueue({ warm: true, i });
  await until(() => warm >= 100, { what: "warm-up jobs" });
  await sleep(200);
  const bytesBefore = await schemaBytes(sql, sys.schemas);
  const rowsBefore = await schemaTuples(sql, sys.schemas);

  const meter = await meterFor(sql);
  meter?.start();
  let sent = 0;
  let skipped = 0;
  let outstanding = 0;
  let errors = 0;
  let bytesMax = bytesBefore;
  const start = now();
  let nextSize = start + 5000;
  while (sent + skipped < total) {
    const due = Math.min(total, Math.floor(((now() - start) / 1000) * rate));
    while (sent + skipped < due) {
      if (outstanding >= MAX_OUTSTANDING) {
        skipped++;
        continue;
      }
      const i = sent + skipped;
      sent++;
      outstanding++;
      sentAt[i] = now();
      sys.enqueue({ i, t: sentAt[i] }).then(
        () => (outstanding--, (committedAt[i] = now())),
        () => (outstanding--, errors++),
      );
    }
    if (now() > nextSize) {
      nextSize += 5000;
      bytesMax = Math.max(bytesMax, await schemaBytes(sql, sys.schemas));
    }
    await sleep(5);
  }
  const producerSeconds = (now() - start) / 1000;
  let drained = true;
  await until(() => received >= sent - errors, { timeoutMs: 60_000, what: "the sustained backlog" }).catch(() => (drained = false));
  const drainSeconds = (now() - start) / 1000 - producerSeconds;
  await sleep(100); // completions of the last jobs
  const cpu = meter?.stop();
  const bytesAfter = await schemaBytes(sql, sys.schemas);
  await sleep(600); // the statistics collector reports with a delay
  const rowsAfter = await schemaTuples(sql, sys.schemas);
  await worker.stop();
  const mb = (b) => Math.round((b / 1048576) * 100) / 100;
  return {
    rate,
    seconds: cfg.sustainedSeconds,
    sent,
    skipped,
    errors,
    received,
    drained,
    drainAfterSeconds: Math.round(drainSeconds * 100) / 100,
    e2e: summarize(latencies.filter((x) => x !== null)),
    // time spent getting the job in (the enqueue call, queueing for a connection
    // included), and from the enqueue's return to the handler (0 if it ran first)
    enqueueCall: summarize(committedAt.flatMap((c, i) => (c === null ? [] : [c - sentAt[i]]))),
    afterEnqueue: summarize(ranAt.flatMap((r, i) => (r === null || committedAt[i] === null ? [] : [Math.max(0, r - committedAt[i])]))),
    // the same by 5 s of the load (by when the enqueue was called): a tail that grows
    // through the run (a worker falling behind) shows here, not in the totals
    timeline: timeline(start, sentAt, committedAt, ranAt),
    mbBefore: mb(bytesBefore),
    mbMax: mb(Math.max(bytesMax, bytesAfter)),
    mbAfter: mb(bytesAfter),
    rowsBefore,
    rowsAfter,
    // (the admin connection's size checks count too: one query every 5 s)
    pgCpuUsPerJob: pgUsPerJob(cpu, sent),
  };
}

/** Per 5 s of the load: the enqueue call's and the rest's p50 and p99 (ms). */
function timeline(start, sentAt, committedAt, ranAt) {
  const buckets = [];
  sentAt.forEach((sent, i) => {
    if (sent === null || committedAt[i] === null || ranAt[i] === null) return;
    const b = (buckets[Math.floor((sent - start) / 5000)] ??= { call: [], after: [] });
    b.call.push(committedAt[i] - sent);
    b.after.push(Math.max(0, ranAt[i] - committedAt[i]));
  });
  return buckets.map((b, k) => {
    const call = summarize(b.call);
    const after = summarize(b.after);
    return { fromS: k * 5, call: [call.p50, call.p99], afterEnqueue: [after.p50, after.p99] };
  });
}
