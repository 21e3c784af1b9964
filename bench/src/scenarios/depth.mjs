// depth: the same worker with depthSmall, then depthLarge jobs waiting. After
// each fill the tables are VACUUM ANALYZEd (a settled backlog, as autovacuum
// would leave it); then the worker processes depthJobs jobs while every claim
// statement it sends is timed from the client (send to reply). Reported per
// depth: claim statement latency, claims made, and jobs/s over those jobs.
import { vacuumSchemas } from "../db.mjs";
import { startClaimTimer, stopClaimTimer } from "../instrument.mjs";
import { now, summarize } from "../stats.mjs";
import { fill } from "./fill.mjs";

export async function depth(sys, cfg, { sql }) {
  const out = {};
  let queued = 0;
  for (const [label, target] of [["small", cfg.depthSmall], ["large", cfg.depthLarge]]) {
    const tf = now();
    await fill(sys, target - queued, Math.max(cfg.bulkSize, 5000), queued);
    const fillSeconds = (now() - tf) / 1000;
    await vacuumSchemas(sql, sys.schemas);
    queued = await sys.remaining();

    const k = cfg.depthJobs;
    let count = 0;
    let first = 0;
    let kth = 0;
    let resolveK;
    const enough = new Promise((r) => (resolveK = r));
    startClaimTimer(sys.claimMatcher);
    const t0 = now();
    const worker = await sys.startWorker(() => {
      const t = now();
      if (count === 0) first = t;
      if (++count === k) (kth = t), resolveK();
    }, { instrument: true, batch: cfg.concurrency });
    let timer;
    await Promise.race([enough, new Promise((r) => (timer = setTimeout(r, 120_000)))]);
    clearTimeout(timer);
    await worker.stop();
    const samples = stopClaimTimer();
    queued = await sys.remaining();
    out[label] = {
      waiting: target,
      fillSeconds: Math.round(fillSeconds * 10) / 10,
      claim: summarize(samples.slice(1)), // the first may include preparing the statement
      claims: samples.length,
      jobsPerSec: kth ? Math.round((k - 1) / ((kth - first) / 1000)) : null,
      startToFirstJobMs: Math.round((first - t0) * 10) / 10,
    };
  }
  const s = out.small.claim.p50;
  const l = out.large.claim.p50;
  return { ...out, claimP50Ratio: s && l ? Math.round((l / s) * 100) / 100 : null };
}
