// Job endpoints: enqueue, read, list (filtered as the bulk endpoints are), cancel, retry.
import { Hono } from "hono";
import * as v from "valibot";
import { PgPulseError } from "../shared/errors.ts";
import type { Queue } from "../producer/types.ts";
import type { AuthEnv } from "./auth.ts";
import { readJson } from "./body.ts";
import { ApiError } from "./errors.ts";
import { readQuery } from "./query.ts";
import { enqueueBodySchema, jobIdSchema, parseJobListQuery, validate } from "./schemas.ts";

const emptyBodySchema = v.optional(v.strictObject({}, "this endpoint takes no fields"));

export function jobRoutes(queue: Queue, maxBodyBytes: number): Hono<AuthEnv> {
  const app = new Hono<AuthEnv>();

  app.post("/jobs", async (c) => {
    const body = await readJson(c, maxBodyBytes);
    if (body === undefined) throw new ApiError(400, "INVALID_INPUT", "the body must be a JSON object with at least a task", [{ path: "", message: "missing body" }]);
    const { task, payload, ...options } = validate(enqueueBodySchema, body, "job");
    const job = await queue.enqueue(task, payload === undefined ? {} : payload, options);
    if (!job.deduplicated) c.header("Location", `${c.req.path.replace(/\/$/, "")}/${job.id}`);
    return c.json(job, job.deduplicated ? 200 : 201);
  });

  app.get("/jobs", async (c) => {
    return c.json(await queue.listJobs(parseJobListQuery(readQuery(c, ["limit"]), "query")));
  });

  app.get("/jobs/:id", async (c) => {
    const id = validate(jobIdSchema, c.req.param("id"), "job id");
    const job = await queue.getJob(id);
    if (!job) throw new ApiError(404, "NOT_FOUND", `no job with id ${id}`);
    return c.json(job);
  });

  for (const action of ["cancel", "retry"] as const) {
    app.post(`/jobs/:id/${action}`, async (c) => {
      const id = validate(jobIdSchema, c.req.param("id"), "job id");
      validate(emptyBodySchema, await readJson(c, maxBodyBytes), "body");
      return c.json(await transition(queue, id, action));
    });
  }

  return app;
}

/**
 * Cancels or retries. An impossible transition is a 409 whose details carry the
 * job's current status and the job itself, read after the refusal.
 */
export async function transition(queue: Queue, id: string, action: "cancel" | "retry") {
  try {
    return await (action === "cancel" ? queue.cancel(id) : queue.retry(id));
  } catch (error) {
    if (!(error instanceof PgPulseError) || error.code !== "INVALID_TRANSITION") throw error;
    const job = await queue.getJob(id);
    if (!job) throw new ApiError(404, "NOT_FOUND", `no job with id ${id}`);
    // reason says why beyond the status (a key now held by another job, a parent that ended this job: parent is its id)
    const { reason, parent } = (error.details ?? {}) as { reason?: string; parent?: string };
    throw new ApiError(409, "INVALID_TRANSITION", error.message, { status: job.status, ...(reason ? { reason } : {}), ...(parent ? { parent } : {}), job });
  }
}
