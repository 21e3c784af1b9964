// latency: workers idle, one job every intervalMs (open loop: the schedule does
// not wait for enqueues to return). Measured from just before the enqueue call
// to the handler's start, in one process, so one clock.
import { now, sleep, summarize } from "../stats.mjs";

export async function latency(sys, cfg) {
  const n = cfg.latencyJobs;
  const interval = cfg.latencyIntervalMs;
  const warmup = Math.min(20, Math.floor(n / 10));
  const samples = new Array(n).fill(null);
  let got = 0;
  let resolveAll;
  const all = new Promise((r) => (resolveAll = r));
  const worker = await sys.startWorker((p) => {
    if (samples[p.i] === null) got++;
    samples[p.i] = now() - p.t;
    if (got === n) resolveAll();
  });
  await sleep(1000); // listeners up, pools warm, start-up claims done
  const sends = [];
  const start = now();
  for (let i = 0; i < n; i++) {
    const due = start + i * interval;
    const wait = due - now();
    if (wait > 0) await sleep(wait);
    sends.push(sys.enqueue({ i, t: now() }));
  }
  await Promise.all(sends);
  let timer;
  await Promise.race([all, new Promise((r) => (timer = setTimeout(r, 10_000)))]);
  clearTimeout(timer);
  await worker.stop();
  const measured = samples.slice(warmup).filter((x) => x !== null);
  return { jobs: n, intervalMs: interval, received: got, warmupDropped: warmup, ...summarize(measured) };
}
