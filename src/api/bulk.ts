// Bulk endpoints: retry, cancel or delete every job a filter matches, in batches.
import { Hono } from "hono";
import type { Queue } from "../producer/types.ts";
import type { AuthEnv } from "./auth.ts";
import { readJson } from "./body.ts";
import { ApiError } from "./errors.ts";
import { bulkBodySchema, deleteBodySchema, validate } from "./schemas.ts";

export function bulkRoutes(queue: Queue, maxBodyBytes: number): Hono<AuthEnv> {
  const app = new Hono<AuthEnv>();
  for (const action of ["retry", "cancel", "delete"] as const) {
    app.post(`/jobs/${action}`, async (c) => {
      const body = await readJson(c, maxBodyBytes);
      if (body === undefined) {
        throw new ApiError(400, "INVALID_INPUT", 'the body must be a JSON object with a filter: {"filter": {"status": "failed"}}', [{ path: "", message: "missing body" }]);
      }
      if (action === "delete") {
        const { filter, all, batchSize, dryRun } = validate(deleteBodySchema, body, "body");
        return c.json(await queue.deleteJobs(filter, { all, batchSize, dryRun }));
      }
      const { filter, batchSize, dryRun } = validate(bulkBodySchema, body, "body");
      return c.json(await (action === "retry" ? queue.retryJobs(filter, { batchSize, dryRun }) : queue.cancelJobs(filter, { batchSize, dryRun })));
    });
  }
  return app;
}
