// Workflow endpoints: enqueue a flow or a batch, read a batch, a job's graph and its log lines.
import { type Context, Hono } from "hono";
import type { JobLogLine, Queue } from "../producer/types.ts";
import type { FlowJobSpec } from "../producer/workflow-types.ts";
import { PgPulseError } from "../shared/errors.ts";
import type { AuthEnv } from "./auth.ts";
import { readJson } from "./body.ts";
import { ApiError } from "./errors.ts";
import { readQuery } from "./query.ts";
import { batchBodySchema, batchIdSchema, flowBodySchema, graphQuerySchema, jobIdSchema, logsQuerySchema, validate } from "./schemas.ts";

const CALLBACKS = ["complete", "success", "failure"] as const;

export function workflowRoutes(queue: Queue, maxBodyBytes: number): Hono<AuthEnv> {
  const app = new Hono<AuthEnv>();

  app.post("/flows", async (c) => {
    const { jobs } = validate(flowBodySchema, await requireBody(c, maxBodyBytes, "a flow"), "flow");
    const enqueued = await relocating(() => queue.enqueueFlow(jobs as FlowJobSpec[]), (i) => `jobs[${i}]`);
    return c.json({ jobs: enqueued }, 201);
  });

  app.post("/batches", async (c) => {
    const { jobs, callbacks = {} } = validate(batchBodySchema, await requireBody(c, maxBodyBytes, "a batch"), "batch");
    // The library counts a batch's callbacks after its jobs, in this order.
    const given = CALLBACKS.filter((k) => callbacks[k] !== undefined);
    const batch = await relocating(
      () => queue.enqueueBatch(jobs, { callbacks }),
      (i) => (i < jobs.length ? `jobs[${i}]` : `callbacks.${given[i - jobs.length] ?? "?"}`),
    );
    c.header("Location", `${c.req.path.replace(/\/$/, "")}/${batch.id}`);
    return c.json(batch, 201);
  });

  app.get("/batches/:id", async (c) => {
    const id = validate(batchIdSchema, c.req.param("id"), "batch id");
    const batch = await queue.getBatch(id);
    if (!batch) throw new ApiError(404, "NOT_FOUND", `no batch with id ${id}`);
    return c.json(batch);
  });

  app.get("/jobs/:id/graph", async (c) => {
    const id = validate(jobIdSchema, c.req.param("id"), "job id");
    const { limit } = validate(graphQuerySchema, readQuery(c, ["limit"]), "query");
    const graph = await queue.getGraph(id, limit === undefined ? {} : { limit });
    if (!graph) throw new ApiError(404, "NOT_FOUND", `no job with id ${id}`);
    // Times as every other response gives them (the database's JSON has microseconds and an offset).
    const iso = (t: string | null) => (t === null ? null : new Date(t).toISOString());
    return c.json({ ...graph, nodes: graph.nodes.map((n) => ({ ...n, startedAt: iso(n.startedAt), finishedAt: iso(n.finishedAt) })) });
  });

  app.get("/jobs/:id/logs", async (c) => {
    const id = validate(jobIdSchema, c.req.param("id"), "job id");
    const { after = 0, limit = 100 } = validate(logsQuerySchema, readQuery(c, ["after", "limit"]), "query");
    const logs: JobLogLine[] = await queue.getJobLogs(id, { after, limit });
    // No lines: say whether there is a job at all (a job's lines go with it).
    if (logs.length === 0 && !(await queue.getJob(id))) throw new ApiError(404, "NOT_FOUND", `no job with id ${id}`);
    return c.json({ logs, nextAfter: logs.length === limit ? logs.at(-1)!.seq : null });
  });

  return app;
}

async function requireBody(c: Context, maxBodyBytes: number, what: string): Promise<unknown> {
  const body = await readJson(c, maxBodyBytes);
  if (body === undefined) throw new ApiError(400, "INVALID_INPUT", `the body must be a JSON object with the jobs of ${what}`, [{ path: "", message: "missing body" }]);
  return body;
}

/**
 * Runs a flow or batch enqueue. The library names a job by its place in what
 * it was given ("[2].parents[0]"); the API's answer names it in the request
 * body ("jobs[2].parents[0]", "callbacks.failure"), in details and message alike.
 */
async function relocating<T>(run: () => Promise<T>, where: (index: number) => string): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (!(error instanceof PgPulseError)) throw error;
    const fix = (text: string) => text.replace(/(^|; )\[(\d+)\]/g, (_, lead: string, i: string) => `${lead}${where(Number(i))}`);
    const details = error.details;
    const moved = Array.isArray(details)
      ? details.map((d) => ({ ...d, path: fix(d.path) }))
      : details && typeof details === "object" && typeof (details as { path?: unknown }).path === "string"
        ? { ...details, path: fix((details as { path: string }).path) }
        : details;
    throw new PgPulseError(error.code, fix(error.message), { cause: error, ...(moved === undefined ? {} : { details: moved }) });
  }
}
