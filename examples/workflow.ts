/**
 * A workflow end to end: an uploaded image is resized, then three thumbnails
 * are made in parallel, then the user is told, with every thumbnail's URL.
 * The four steps are one graph, enqueued in one statement (in the caller's
 * transaction if it passes one); each step waits for its parents and starts
 * as soon as they end, and the caller follows the last step live.
 *
 * test/example-workflow.test.ts runs it against Postgres.
 */
import { createQueue, createWorker, type Queue, type TaskMap, type Worker } from "../src/index.ts";

const SIZES = [64, 256, 1024] as const;

/** The handlers. Real ones would call an image service with `ctx.signal`. */
export const imageTasks: TaskMap = {
  resize: async (p: { image: string }, ctx) => {
    ctx.log("resizing", { image: p.image });
    return { master: `${p.image}.2048.webp` };
  },
  thumbnail: async (p: { size: number }, ctx) => {
    // a child reads its parents' results: here the resized master
    const [resized] = await ctx.parents();
    const { master } = resized!.result as { master: string };
    ctx.log.info(`thumbnail ${p.size}px`, { from: master });
    return { url: `${master}.${p.size}.webp` };
  },
  notify: async (p: { user: string }, ctx) => {
    const thumbs = (await ctx.parents()).map((parent) => (parent.result as { url: string }).url);
    ctx.log("telling the user", { user: p.user, thumbs: thumbs.length });
    return { told: p.user, thumbs };
  },
};

/** Enqueues the graph for one upload; returns the jobs by name. */
export async function enqueueImageWorkflow(queue: Queue, image: string, user: string) {
  const jobs = await queue.enqueueFlow([
    { name: "resize", task: "resize", payload: { image }, maxAttempts: 3 },
    ...SIZES.map((size) => ({ name: `thumb-${size}`, task: "thumbnail", payload: { size }, parents: ["resize"] })),
    // the user is told even if a thumbnail failed for good: "run" instead of the default "fail"
    { name: "notify", task: "notify", payload: { user }, parents: SIZES.map((size) => `thumb-${size}`), onParentFailure: "run" as const },
  ]);
  return Object.fromEntries(jobs.map((j) => [j.name, j]));
}

/** Runs one upload's workflow with a worker of its own, following the last step until it ends. */
export async function runImageWorkflow(connection: string, schema: string) {
  const queue = createQueue({ connection, schema });
  const worker: Worker = createWorker({ connection, schema, tasks: imageTasks, logger: "error" });
  await worker.start();
  try {
    const jobs = await enqueueImageWorkflow(queue, "uploads/cat.png", "ann");
    const seen: string[] = [];
    for await (const { job, logs } of queue.watch(jobs.notify!.id)) {
      seen.push(job.status, ...logs.map((l) => l.message));
    }
    return { jobs, notify: await queue.getJob(jobs.notify!.id), seen };
  } finally {
    await worker.stop();
    await queue.close();
  }
}
