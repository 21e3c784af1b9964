/**
 * Operating queues and schedules from code, as docs/operating.md shows it:
 * limits, pause and resume, schedules (added, triggered now, removed), the
 * per-minute figures and pruning.
 *
 * test/example-operating.test.ts runs it against Postgres.
 */
import { createQueue, createWorker } from "../src/index.ts";

export async function operate(connection: string, schema?: string) {
  const queue = createQueue({ connection, ...(schema ? { schema } : {}) });
  const worker = createWorker({
    connection, ...(schema ? { schema } : {}),
    queues: ["emails"],
    tasks: { "send-digest": async (p: { audience: string }) => ({ sent: p.audience }) },
    logger: "error",
  });
  try {
    // Limits across every worker; a limit left out keeps its value, null lifts it.
    await queue.configureQueue("emails", { concurrency: 20, rateLimit: { max: 100, intervalMs: 60_000 } });
    await queue.configureQueue("emails", { rateLimit: null });

    // Pause: running jobs finish, nothing new starts. Resume wakes the workers.
    await queue.pauseQueue("emails");
    const paused = (await queue.listQueueStates()).find((q) => q.queue === "emails");
    await queue.resumeQueue("emails");

    // A schedule, its job enqueued now (once, as a tick makes it), then removed.
    await queue.addSchedule({ name: "weekly-digest", cron: "0 9 * * 1", timezone: "Europe/Oslo", task: "send-digest", queue: "emails", payload: { audience: "all" } });
    await worker.start();
    const done = new Promise<void>((resolve) => worker.on("job:completed", () => resolve()));
    const job = await queue.triggerSchedule("weekly-digest");
    await done;
    await worker.stop(); // writes its last per-minute counts
    const schedule = await queue.getSchedule("weekly-digest");
    await queue.removeSchedule("weekly-digest");

    // The last 10 minutes of the queue's figures: one point per minute.
    const stats = await queue.getQueueStats({ queue: "emails", minutes: 10 });
    const completed = stats.queues[0]!.points.reduce((n, p) => n + p.completed, 0);

    // Delete finished jobs older than an hour (failed and cancelled ones: 14 days, the default).
    const deleted = await queue.prune({ completedMs: 3_600_000 });

    return { paused: paused?.paused, job, schedule, completed, deleted, config: await queue.getQueueConfig("emails") };
  } finally {
    await worker.stop();
    await queue.close();
  }
}
