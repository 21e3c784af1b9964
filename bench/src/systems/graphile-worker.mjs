// graphile-worker, plain (its defaults) or with its documented batching options:
// preset.worker.localQueue.size and completeJobBatchDelay / failJobBatchDelay.
// Both get the pool size graphile-worker recommends for the concurrency.
import { Logger, makeWorkerUtils, run } from "graphile-worker";

const quiet = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") console.error(`[graphile-worker ${level}] ${message}`);
});

export const BATCHING = { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 };

export function opener({ batching }) {
  return async function open({ url, schema, concurrency }) {
    const utils = await makeWorkerUtils({ connectionString: url, schema, logger: quiet });
    await utils.migrate();
    return {
      schemas: [schema],
      // getJobs (src/sql/getJobs.ts) locks jobs FOR UPDATE SKIP LOCKED.
      claimMatcher: /skip locked/i,
      enqueue: (payload) => utils.addJob("noop", payload),
      enqueueBulk: (payloads) => utils.addJobs(payloads.map((payload) => ({ identifier: "noop", payload }))),
      async startWorker(handler) {
        const runner = await run({
          connectionString: url,
          schema,
          concurrency,
          // its own advice: "10 or concurrentJobs + 2, whichever is larger" (it warns below that)
          maxPoolSize: Math.max(10, concurrency + 2),
          noHandleSignals: true,
          logger: quiet,
          taskList: { noop: async (payload) => void (await handler(payload)) },
          preset: batching ? { worker: BATCHING } : undefined,
        });
        return { stop: () => runner.stop() };
      },
      async remaining() {
        // Completed jobs are deleted; failed ones would stay, but none fail here.
        const { rows } = await utils.withPgClient((c) => c.query(`select count(*)::int as n from "${schema}"._private_jobs`));
        return rows[0].n;
      },
      close: () => utils.release(),
    };
  };
}
