// Queue endpoints: one queue with its configuration, pause and resume, limits;
// pruning finished jobs; the per-minute figures. (GET /queues is in status.ts.)
import { Hono } from "hono";
import * as v from "valibot";
import type { QueueSummary } from "../producer/status.ts";
import type { Queue } from "../producer/types.ts";
import type { AuthEnv } from "./auth.ts";
import { readJson } from "./body.ts";
import { ApiError } from "./errors.ts";
import { readQuery } from "./query.ts";
import { objectBody, pruneBodySchema, queueLimitsBodySchema, queueNameSchema, statsQuerySchema, validate } from "./schemas.ts";

const emptyBodySchema = v.optional(v.strictObject({}, "this endpoint takes no fields"));

export function queueRoutes(queue: Queue, maxBodyBytes: number): Hono<AuthEnv> {
  const app = new Hono<AuthEnv>();

  app.get("/queues/:name", async (c) => {
    const name = validate(queueNameSchema, c.req.param("name"), "queue name");
    return c.json(await queueSummary(queue, name));
  });

  app.post("/queues/:name/pause", async (c) => {
    const name = validate(queueNameSchema, c.req.param("name"), "queue name");
    validate(emptyBodySchema, objectBody(await readJson(c, maxBodyBytes), "body"), "body");
    return c.json(await queue.pauseQueue(name));
  });

  app.post("/queues/:name/resume", async (c) => {
    const name = validate(queueNameSchema, c.req.param("name"), "queue name");
    validate(emptyBodySchema, objectBody(await readJson(c, maxBodyBytes), "body"), "body");
    return c.json(await queue.resumeQueue(name));
  });

  app.patch("/queues/:name", async (c) => {
    const name = validate(queueNameSchema, c.req.param("name"), "queue name");
    const body = await readJson(c, maxBodyBytes);
    if (body === undefined) {
      throw new ApiError(400, "INVALID_INPUT", "the body must be a JSON object with the limits to change", [{ path: "", message: "missing body" }]);
    }
    const limits = validate(queueLimitsBodySchema, objectBody(body, "limits"), "limits");
    return c.json(await queue.configureQueue(name, limits));
  });

  app.post("/prune", async (c) => {
    const retention = validate(v.optional(pruneBodySchema), objectBody(await readJson(c, maxBodyBytes), "retention"), "retention") ?? {};
    return c.json({ deleted: await queue.prune(retention) });
  });

  app.get("/stats", async (c) => {
    const options = validate(statsQuerySchema, readQuery(c, ["minutes"]), "query");
    return c.json(await queue.getQueueStats(options));
  });

  return app;
}

/** One queue's counts and configuration; a queue nobody used or configured has zeros and no limits. */
export async function queueSummary(queue: Queue, name: string): Promise<QueueSummary> {
  const found = (await queue.listQueues()).find((q) => q.queue === name);
  if (found) return found;
  const { queue: _, ...config } = await queue.getQueueConfig(name);
  return {
    queue: name, pending: 0, waiting: 0, scheduled: 0, running: 0, completed: 0, failed: 0, cancelled: 0,
    oldestWaitingMs: null, finishedLastMinute: 0, ...config,
  };
}
