// The systems under test, by name. Each open() returns an adapter:
//   schemas, claimMatcher, enqueue(payload), enqueueBulk(payloads),
//   startWorker(handler, { instrument }) -> { stop() }, remaining(), close()
import * as bullmq from "./bullmq-pg.mjs";
import * as graphile from "./graphile-worker.mjs";
import * as floor from "./floor.mjs";
import * as pgboss from "./pg-boss.mjs";
import * as pgpulse from "./pgpulse.mjs";

export const systems = {
  pgpulse: { open: pgpulse.open, note: "defaults, concurrency 16" },
  "pgpulse-keyed": { open: pgpulse.opener({ keyed: true }), note: "defaults, concurrency 16, every job enqueued with a key of its own (idempotency keys)" },
  "graphile-worker": { open: graphile.opener({ batching: false }), note: "concurrency 16, maxPoolSize 18 (its advice), defaults otherwise" },
  "graphile-worker-batched": {
    open: graphile.opener({ batching: true }),
    note: `concurrency 16, maxPoolSize 18, localQueue.size ${graphile.BATCHING.localQueue.size}, completeJobBatchDelay 0, failJobBatchDelay 0`,
  },
  "pg-boss": { open: pgboss.open, note: `useListenNotify + notify queue, batchSize ${pgboss.BATCH_SIZE}, burstWhenBatchFull, 16 handlers at once` },
  "bullmq-pg": { open: bullmq.open, note: "createPostgresBackend, defaults, concurrency 16" },
  floor: { open: floor.opener({ mode: "cte" }), note: "bare SQL: delete previous batch + claim next in one statement, 2 loops, batches of 500" },
  "floor-update": { open: floor.opener({ mode: "update" }), note: "bare SQL: claim 500, then mark them done (rows kept), 2 loops" },
};
