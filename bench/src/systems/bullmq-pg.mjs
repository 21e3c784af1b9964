// BullMQ 6 on its PostgreSQL backend (createPostgresBackend, node-postgres),
// with BullMQ's defaults: completed jobs are kept, one job claimed per call.
import { createPostgresBackend, Queue, Worker } from "bullmq";

export async function open({ url, schema, concurrency }) {
  // migrate: true lets BullMQ create its schema (it refuses an uninitialised one otherwise)
  const connection = { connectionString: url, schema, migrate: true };
  const queue = new Queue("noop", { connection }, createPostgresBackend);
  await queue.waitUntilReady();
  return {
    schemas: [schema],
    // move_to_active claims one job; move_to_completed_fetch completes one and claims the next.
    claimMatcher: /move_to_active\(|move_to_completed_fetch/,
    enqueue: (payload) => queue.add("noop", payload),
    enqueueBulk: (payloads) => queue.addBulk(payloads.map((data) => ({ name: "noop", data }))),
    async startWorker(handler) {
      const worker = new Worker("noop", async (job) => void (await handler(job.data)), { connection, concurrency }, createPostgresBackend);
      worker.on("error", (error) => console.error(`[bullmq error] ${error.message}`));
      await worker.waitUntilReady();
      return { stop: () => worker.close() };
    },
    async remaining() {
      const c = await queue.getJobCounts("waiting", "active", "delayed", "prioritized");
      return Object.values(c).reduce((a, b) => a + b, 0);
    },
    close: () => queue.close(),
  };
}
