// Operations endpoints: queues, workers, health, metrics.
import { Hono } from "hono";
import type { Queue } from "../producer/types.ts";
import type { AuthEnv } from "./auth.ts";
import { checkHealth, type Health } from "./health.ts";
import { renderMetrics } from "./metrics.ts";

export function statusRoutes(queue: Queue): Hono<AuthEnv> {
  const app = new Hono<AuthEnv>();
  app.get("/queues", async (c) => c.json({ queues: await queue.listQueues() }));
  app.get("/workers", async (c) => c.json({ workers: await queue.listWorkers() }));
  app.get("/metrics", async (c) => {
    c.header("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    return c.body(await renderMetrics(queue));
  });
  return app;
}

/** Unauthenticated: answers 200 when healthy, 503 when not, with the same body. */
export function healthRoute(queue: Queue, listener: () => Health["listener"], timeoutMs: number): Hono {
  const app = new Hono();
  app.get("/healthz", async (c) => {
    const health = await checkHealth(queue, listener, timeoutMs);
    c.header("Cache-Control", "no-store");
    return c.json(health, health.ok ? 200 : 503);
  });
  return app;
}
