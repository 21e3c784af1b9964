// GET /openapi.json: built from the same valibot schemas that validate requests.
import { type JsonSchema, toJsonSchema } from "./json-schema.ts";
import * as s from "./schemas.ts";

export const API_VERSION = "1.0.0";

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: unknown) => ({ "application/json": { schema } });

const ERRORS: Record<number, string> = {
  400: "Invalid input; details lists each field path and what is wrong with it.",
  401: "No bearer token, or one that is not valid.",
  403: "A read-only token tried to write.",
  404: "No such job.",
  409: "The job cannot make that transition; details carries its status and the job.",
  413: "The body is over the limit (1 MiB by default).",
  415: "The body is not JSON.",
  503: "The database is unavailable.",
};

function responses(ok: Record<string, unknown>, errors: number[]) {
  const out: Record<string, unknown> = { ...ok };
  for (const code of [...errors, 503]) out[code] = { description: ERRORS[code], content: json(ref("Error")) };
  return out;
}

function queryParameters(schema: JsonSchema) {
  const properties = schema.properties as Record<string, JsonSchema>;
  return Object.entries(properties).map(([name, p]) => ({
    name,
    in: "query",
    required: false,
    ...(typeof p.description === "string" ? { description: p.description } : {}),
    schema: p,
  }));
}

/** The OpenAPI 3.1 document; `serverUrl` is where the API is mounted. */
export function openApiDocument(serverUrl: string): Record<string, unknown> {
  const idParam = { name: "id", in: "path", required: true, schema: toJsonSchema(s.jobIdSchema) };
  const transition = (summary: string, description: string) => ({
    summary,
    description,
    parameters: [idParam],
    responses: responses({ 200: { description: "The job after the change.", content: json(ref("Job")) } }, [400, 401, 403, 404, 409, 413, 415]),
  });
  return {
    openapi: "3.1.0",
    info: { title: "pgpulse", version: API_VERSION, description: "Enqueue, inspect, cancel and retry pgpulse jobs; queue and worker status." },
    servers: [{ url: serverUrl }],
    security: [{ bearer: [] }],
    paths: {
      "/jobs": {
        post: {
          summary: "Enqueue a job",
          requestBody: { required: true, content: json(ref("EnqueueRequest")) },
          responses: responses(
            {
              201: { description: "Enqueued; Location names the job.", content: json(ref("EnqueuedJob")) },
              200: { description: "A live job with the same key exists; it is returned instead (deduplicated: true).", content: json(ref("EnqueuedJob")) },
            },
            [400, 401, 403, 413, 415],
          ),
        },
        get: {
          summary: "List jobs, newest first",
          parameters: queryParameters(toJsonSchema(s.listJobsQuerySchema)),
          responses: responses({ 200: { description: "A page of jobs; pass nextCursor back as cursor.", content: json(ref("JobList")) } }, [400, 401]),
        },
      },
      "/jobs/{id}": {
        get: {
          summary: "Get a job: status, progress, result, errors per attempt, timestamps",
          parameters: [idParam],
          responses: responses({ 200: { description: "The job.", content: json(ref("Job")) } }, [400, 401, 404]),
        },
      },
      "/jobs/{id}/cancel": { post: transition("Cancel a job", "A queued job is cancelled at once; a running one is asked to stop.") },
      "/jobs/{id}/retry": { post: transition("Retry a job", "Puts a failed or cancelled job back in its queue, to run now.") },
      "/queues": {
        get: { summary: "Per queue: jobs by state, oldest waiting job, jobs finished in the last minute", responses: responses({ 200: { description: "Queues.", content: json(ref("QueueList")) } }, [401]) },
      },
      "/workers": {
        get: { summary: "Live workers, their heartbeat age and running jobs", responses: responses({ 200: { description: "Workers.", content: json(ref("WorkerList")) } }, [401]) },
      },
      "/metrics": {
        get: {
          summary: "Prometheus metrics",
          responses: responses({ 200: { description: "Text exposition format 0.0.4.", content: { "text/plain": { schema: { type: "string" } } } } }, [401]),
        },
      },
      "/healthz": {
        get: {
          summary: "Health: database reachable, worker listeners up. Needs no token.",
          security: [],
          responses: {
            200: { description: "Healthy.", content: json(ref("Health")) },
            503: { description: "Unhealthy; the body says what is wrong.", content: json(ref("Health")) },
          },
        },
      },
      "/openapi.json": { get: { summary: "This document", responses: { 200: { description: "OpenAPI 3.1.", content: json({ type: "object" }) } } } },
    },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "A token from the API's configuration (PGPULSE_API_TOKEN)." } },
      schemas: {
        EnqueueRequest: toJsonSchema(s.enqueueBodySchema),
        Job: toJsonSchema(s.jobSchema),
        EnqueuedJob: toJsonSchema(s.enqueuedJobSchema),
        JobError: toJsonSchema(s.jobErrorSchema),
        JobList: toJsonSchema(s.jobListSchema),
        QueueList: toJsonSchema(s.queueListSchema),
        WorkerList: toJsonSchema(s.workerListSchema),
        Health: toJsonSchema(s.healthSchema),
        Error: toJsonSchema(s.errorSchema),
      },
    },
  };
}
