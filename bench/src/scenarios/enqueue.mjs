// enqueue: no worker running. Single inserts one after another from one
// caller; single inserts from `enqueueClients` callers at once (the commit and
// NOTIFY path under contention); bulk inserts of bulkSize jobs per call.
import { now, pool } from "../stats.mjs";

export async function enqueue(sys, cfg) {
  for (let i = 0; i < 50; i++) await sys.enqueue({ i, warm: true }); // prepared statements, pool

  let t = now();
  for (let i = 0; i < cfg.enqueueSingle; i++) await sys.enqueue({ i });
  const single = cfg.enqueueSingle / ((now() - t) / 1000);

  const items = Array.from({ length: cfg.enqueueParallel }, (_, i) => i);
  t = now();
  await pool(items, cfg.enqueueClients, (i) => sys.enqueue({ i }));
  const parallel = cfg.enqueueParallel / ((now() - t) / 1000);

  t = now();
  for (let b = 0; b < cfg.enqueueBulkBatches; b++) {
    await sys.enqueueBulk(Array.from({ length: cfg.bulkSize }, (_, i) => ({ i: b * cfg.bulkSize + i })));
  }
  const bulk = (cfg.enqueueBulkBatches * cfg.bulkSize) / ((now() - t) / 1000);

  return {
    singlePerSec: Math.round(single),
    parallelPerSec: Math.round(parallel),
    parallelClients: cfg.enqueueClients,
    bulkJobsPerSec: Math.round(bulk),
    bulkSize: cfg.bulkSize,
  };
}
