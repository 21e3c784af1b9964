// Schedule endpoints: list, read, add or replace, remove, and trigger now.
import { Hono } from "hono";
import type * as v from "valibot";
import { upsertSchedule } from "../producer/schedules.ts";
import type { Schedule, ScheduleSpec } from "../producer/schedules.ts";
import type { Queue } from "../producer/types.ts";
import type { AuthEnv } from "./auth.ts";
import { readJson } from "./body.ts";
import { ApiError } from "./errors.ts";
import { objectBody, scheduleBodySchema, scheduleNameSchema, triggerBodySchema, validate } from "./schemas.ts";

/** A schedule as the API shows it: the options beside the other fields, null when unset, as PUT takes them. */
export function scheduleJson(s: Schedule) {
  return {
    name: s.name,
    cron: s.cron,
    timezone: s.timezone,
    task: s.task,
    payload: s.payload,
    queue: s.options.queue ?? null,
    priority: s.options.priority ?? null,
    maxAttempts: s.options.maxAttempts ?? null,
    timeoutMs: s.options.timeoutMs ?? null,
    catchUp: s.catchUp,
    lastTick: s.lastTick,
    nextTick: s.nextTick,
  };
}

/** A PUT body (checked) as the library's spec: null options are left unset (a null payload is a payload). */
export function scheduleSpec(name: string, body: v.InferOutput<typeof scheduleBodySchema>): ScheduleSpec {
  const spec: ScheduleSpec = { name, cron: body.cron, task: body.task };
  for (const key of ["payload", "timezone", "queue", "priority", "maxAttempts", "timeoutMs", "catchUp"] as const) {
    const value = body[key];
    if (value !== undefined && (value !== null || key === "payload")) (spec as unknown as Record<string, unknown>)[key] = value;
  }
  return spec;
}

export function scheduleRoutes(queue: Queue, maxBodyBytes: number): Hono<AuthEnv> {
  const app = new Hono<AuthEnv>();
  const nameOf = (raw: string) => validate(scheduleNameSchema, raw, "schedule name");

  app.get("/schedules", async (c) => c.json({ schedules: (await queue.listSchedules()).map(scheduleJson) }));

  app.get("/schedules/:name", async (c) => {
    const name = nameOf(c.req.param("name"));
    const schedule = await queue.getSchedule(name);
    if (!schedule) throw new ApiError(404, "NOT_FOUND", `no schedule named ${JSON.stringify(name)}`);
    return c.json(scheduleJson(schedule));
  });

  app.put("/schedules/:name", async (c) => {
    const name = nameOf(c.req.param("name"));
    const body = await readJson(c, maxBodyBytes);
    if (body === undefined) {
      throw new ApiError(400, "INVALID_INPUT", "the body must be a JSON object with at least cron and task", [{ path: "", message: "missing body" }]);
    }
    const spec = scheduleSpec(name, validate(scheduleBodySchema, objectBody(body, "schedule"), "schedule"));
    // Through the database layer the library uses, for whether it was new (201) or replaced (200).
    const { schedule, created } = await upsertSchedule(queue.db, spec, null, queue.maxPayloadBytes);
    if (created) c.header("Location", c.req.path);
    return c.json(scheduleJson(schedule), created ? 201 : 200);
  });

  app.delete("/schedules/:name", async (c) => {
    const name = nameOf(c.req.param("name"));
    if (!(await queue.removeSchedule(name))) throw new ApiError(404, "NOT_FOUND", `no schedule named ${JSON.stringify(name)}`);
    return c.body(null, 204);
  });

  app.post("/schedules/:name/trigger", async (c) => {
    const name = nameOf(c.req.param("name"));
    const options = validate(triggerBodySchema, objectBody(await readJson(c, maxBodyBytes), "body") ?? {}, "body");
    const job = await queue.triggerSchedule(name, options);
    // The job's URL beside this one, wherever the API is mounted (a name's slashes come %-encoded).
    if (!job.deduplicated) c.header("Location", `${c.req.path.slice(0, c.req.path.lastIndexOf("/schedules/"))}/jobs/${job.id}`);
    return c.json(job, job.deduplicated ? 200 : 201);
  });

  return app;
}
