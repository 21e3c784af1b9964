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
  404: "The job, batch or schedule the path names does not exist.",
  409: "The job cannot make that transition; details carries its status and the job.",
  413: "The body is over the limit (1 MiB by default).",
  415: "The body is not JSON.",
  429: "Too many event streams are open (createApi's events.maxStreams); Retry-After says when to try again.",
  503: "The database is unavailable.",
};

const GRAPH_ERRORS = {
  400: {
    description:
      "INVALID_INPUT: a field is wrong (details lists each path). INVALID_GRAPH: the jobs are not a graph (a cycle, an unknown or repeated name); details has a reason (cycle, unknown_parent, duplicate_name) and the path or the cycle. Nothing is written.",
    content: json(ref("Error")),
  },
  413: { description: "PAYLOAD_TOO_LARGE: the body is over the limit. GRAPH_TOO_LARGE: too many jobs or edges for one call.", content: json(ref("Error")) },
};

const DELETE_ERRORS = {
  400: {
    description:
      "INVALID_INPUT: a field is wrong (details lists each path). EMPTY_FILTER: the filter names no job and all is not true. Nothing is changed.",
    content: json(ref("Error")),
  },
};

function responses(ok: Record<string, unknown>, errors: number[], own: Record<number, unknown> = {}) {
  const out: Record<string, unknown> = { ...ok };
  for (const code of [...errors, 503]) out[code] = own[code] ?? { description: ERRORS[code], content: json(ref("Error")) };
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

/** POST /jobs/retry, /jobs/cancel and /jobs/delete. */
function bulkPaths() {
  const bulk = (summary: string, description: string, request: string, own: Record<number, unknown> = {}) => ({
    post: {
      summary,
      description: `${description} Runs in batches (batchSize rows per transaction, in id order, skipping rows other transactions hold and coming back to them), so no lock is held long. See docs/bulk-operations.md.`,
      requestBody: { required: true, content: json(ref(request)) },
      responses: responses({ 200: { description: "Counts: matched = changed + skipped.", content: json(ref("BulkResult")) } }, [400, 401, 403, 413, 415], own),
    },
  });
  return {
    "/jobs/retry": bulk(
      "Retry the jobs a filter matches",
      "Puts every failed or cancelled job matching the filter back in its queue, as POST /jobs/{id}/retry does one; skips jobs whose key a live job holds, and jobs whose parent stands failed or cancelled (retry the parent).",
      "BulkRequest",
    ),
    "/jobs/cancel": bulk(
      "Cancel the jobs a filter matches",
      "Cancels every pending or queued job matching the filter at once, and asks running ones to stop, as POST /jobs/{id}/cancel does one.",
      "BulkRequest",
    ),
    "/jobs/delete": bulk(
      "Delete the finished jobs a filter matches",
      "Deletes every completed, failed or cancelled job matching the filter, with its log lines and edges; skips a job with a child that has not completed. An empty filter is refused (400 EMPTY_FILTER) unless all is true.",
      "DeleteRequest",
      DELETE_ERRORS,
    ),
  };
}

/** The OpenAPI 3.1 document; `serverUrl` is where the API is mounted. */
export function openApiDocument(serverUrl: string): Record<string, unknown> {
  const idParam = { name: "id", in: "path", required: true, schema: toJsonSchema(s.jobIdSchema) };
  const batchIdParam = { name: "id", in: "path", required: true, schema: toJsonSchema(s.batchIdSchema) };
  const queueParam = { name: "name", in: "path", required: true, schema: toJsonSchema(s.queueNameSchema) };
  const scheduleParam = { name: "name", in: "path", required: true, schema: toJsonSchema(s.scheduleNameSchema) };
  const transition = (summary: string, description: string) => ({
    summary,
    description,
    parameters: [idParam],
    responses: responses({ 200: { description: "The job after the change.", content: json(ref("Job")) } }, [400, 401, 403, 404, 409, 413, 415]),
  });
  return {
    openapi: "3.1.0",
    info: {
      title: "pgpulse",
      version: API_VERSION,
      description:
        "Enqueue, inspect, follow, cancel and retry pgpulse jobs, flows and batches; queue and worker status; pause, resume and limit queues; " +
        "manage and trigger schedules; prune finished jobs; per-minute figures.",
    },
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
          summary: "List jobs, newest first, filtered as the bulk endpoints are",
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
      ...bulkPaths(),
      "/jobs/{id}/cancel": { post: transition("Cancel a job", "A queued or pending job is cancelled at once; a running one is asked to stop.") },
      "/jobs/{id}/retry": { post: transition("Retry a job", "Puts a failed or cancelled job back in its queue, to run now.") },
      "/jobs/{id}/graph": {
        get: {
          summary: "The jobs connected to a job by dependencies, and the edges among them",
          parameters: [idParam, ...queryParameters(toJsonSchema(s.graphQuerySchema))],
          responses: responses({ 200: { description: "The graph; truncated when more jobs are connected than limit.", content: json(ref("Graph")) } }, [400, 401, 404]),
        },
      },
      "/jobs/{id}/logs": {
        get: {
          summary: "Lines the job's handlers logged (ctx.log), in order across attempts",
          parameters: [idParam, ...queryParameters(toJsonSchema(s.logsQuerySchema))],
          responses: responses({ 200: { description: "A page of lines; pass nextAfter back as after.", content: json(ref("LogList")) } }, [400, 401, 404]),
        },
      },
      "/jobs/{id}/events": {
        get: {
          summary: "Follow a job: server-sent events until it ends",
          description:
            "A text/event-stream of the job's changes, driven by database notifications: `event: log` for each new log line (`id:` its seq, data a LogLine), " +
            "then `event: job` with the job (data a Job) at once and after each change of status, progress or attempt, and a last `event: end` " +
            "(data an EventEnd) once the job completed, failed or was cancelled; then the server closes the stream. A comment line (`: keep-alive`) " +
            "comes every 15 s on a quiet stream. An error after the stream began is an `event: error` whose data is an Error. A reconnecting client's " +
            "Last-Event-ID header (or `after`) skips the log lines it has. Each open stream holds a database connection; at most 20 at once by default.",
          parameters: [
            idParam,
            ...queryParameters(toJsonSchema(s.eventsQuerySchema)),
            { name: "Last-Event-ID", in: "header", required: false, description: "The id of the last log event received.", schema: { type: "string", pattern: "^(0|[1-9][0-9]{0,9})$" } },
          ],
          responses: responses(
            { 200: { description: "The event stream.", content: { "text/event-stream": { schema: { type: "string" } } } } },
            [400, 401, 404, 429],
            { 503: { description: "The database is unavailable, or the queue cannot follow jobs (details.reason \"no-listen\": it runs through a transaction-mode pooler, which carries no LISTEN).", content: json(ref("Error")) } },
          ),
        },
      },
      "/flows": {
        post: {
          summary: "Enqueue a flow: jobs that wait for other jobs",
          description: "All jobs or none, in one statement. A job with parents is pending until they end; a parent's failure fails, cancels or runs the child as its edge says.",
          requestBody: { required: true, content: json(ref("FlowRequest")) },
          responses: responses({ 201: { description: "The flow's jobs, in the order given, with their names.", content: json(ref("EnqueuedFlow")) } }, [400, 401, 403, 413, 415], GRAPH_ERRORS),
        },
      },
      "/batches": {
        post: {
          summary: "Enqueue a batch of jobs, with callbacks that run when they end",
          requestBody: { required: true, content: json(ref("BatchRequest")) },
          responses: responses(
            { 201: { description: "The batch; Location names it.", content: json(ref("EnqueuedBatch")) } },
            [400, 401, 403, 413, 415],
            GRAPH_ERRORS,
          ),
        },
      },
      "/batches/{id}": {
        get: {
          summary: "A batch: its jobs counted by status, its state, its callbacks",
          parameters: [batchIdParam],
          responses: responses({ 200: { description: "The batch.", content: json(ref("Batch")) } }, [400, 401, 404]),
        },
      },
      "/queues": {
        get: {
          summary: "Per queue: jobs by state, oldest waiting job, jobs finished in the last minute, and its configuration",
          responses: responses({ 200: { description: "Queues with jobs or a configuration, by name.", content: json(ref("QueueList")) } }, [401]),
        },
      },
      "/queues/{name}": {
        get: {
          summary: "One queue: jobs by state and its configuration (a queue nobody used has zeros and no limits)",
          parameters: [queueParam],
          responses: responses({ 200: { description: "The queue.", content: json(ref("Queue")) } }, [400, 401]),
        },
        patch: {
          summary: "Set or lift the queue's limits",
          description: "A limit left out keeps its value; null lifts it. The limits hold across every worker.",
          parameters: [queueParam],
          requestBody: { required: true, content: json(ref("QueueLimitsRequest")) },
          responses: responses({ 200: { description: "The queue's configuration after the change.", content: json(ref("QueueConfig")) } }, [400, 401, 403, 413, 415]),
        },
      },
      "/queues/{name}/pause": {
        post: {
          summary: "Pause a queue: no new job of it starts; running ones finish",
          parameters: [queueParam],
          responses: responses({ 200: { description: "The queue's configuration.", content: json(ref("QueueConfig")) } }, [400, 401, 403, 413, 415]),
        },
      },
      "/queues/{name}/resume": {
        post: {
          summary: "Resume a queue; its workers are woken at once",
          parameters: [queueParam],
          responses: responses({ 200: { description: "The queue's configuration.", content: json(ref("QueueConfig")) } }, [400, 401, 403, 413, 415]),
        },
      },
      "/schedules": {
        get: { summary: "Recurring jobs, by name", responses: responses({ 200: { description: "Schedules.", content: json(ref("ScheduleList")) } }, [401]) },
      },
      "/schedules/{name}": {
        get: {
          summary: "One schedule",
          parameters: [scheduleParam],
          responses: responses({ 200: { description: "The schedule.", content: json(ref("Schedule")) } }, [400, 401, 404]),
        },
        put: {
          summary: "Add a schedule, or replace the definition of the one by that name",
          description: "A new schedule first fires at its next tick after the database's time; a replaced one keeps its next tick unless its cron or time zone changed.",
          parameters: [scheduleParam],
          requestBody: { required: true, content: json(ref("ScheduleRequest")) },
          responses: responses(
            {
              201: { description: "Added; Location names it.", content: json(ref("Schedule")) },
              200: { description: "Replaced.", content: json(ref("Schedule")) },
            },
            [400, 401, 403, 413, 415],
          ),
        },
        delete: {
          summary: "Remove a schedule (jobs it made stay)",
          parameters: [scheduleParam],
          responses: responses({ 204: { description: "Removed." } }, [400, 401, 403, 404]),
        },
      },
      "/schedules/{name}/trigger": {
        post: {
          summary: "Enqueue the schedule's job now, once, as a tick makes it",
          description: "Its task, payload and options; the schedule's next tick does not move.",
          parameters: [scheduleParam],
          requestBody: { required: false, content: json(ref("TriggerRequest")) },
          responses: responses(
            {
              201: { description: "Enqueued; Location names the job.", content: json(ref("EnqueuedJob")) },
              200: { description: "A live job with the same key exists; it is returned instead (deduplicated: true).", content: json(ref("EnqueuedJob")) },
            },
            [400, 401, 403, 404, 413, 415],
          ),
        },
      },
      "/prune": {
        post: {
          summary: "Delete finished jobs past retention, now",
          description: "As the workers' pruner does it: in batches of 1,000; a parent whose children still wait or run is kept. Another prune under way (a worker's) ends this one early.",
          requestBody: { required: false, content: json(ref("PruneRequest")) },
          responses: responses({ 200: { description: "How many jobs were deleted.", content: json(ref("PruneResult")) } }, [400, 401, 403, 413, 415]),
        },
      },
      "/stats": {
        get: {
          summary: "Per-queue figures by the minute: throughput, waiting jobs, wait from run time to start",
          parameters: queryParameters(toJsonSchema(s.statsQuerySchema)),
          responses: responses({ 200: { description: "One point per minute of the window, per queue.", content: json(ref("Stats")) } }, [400, 401]),
        },
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
        BulkRequest: toJsonSchema(s.bulkBodySchema),
        DeleteRequest: toJsonSchema(s.deleteBodySchema),
        BulkResult: toJsonSchema(s.bulkResultSchema),
        Job: toJsonSchema(s.jobSchema),
        EnqueuedJob: toJsonSchema(s.enqueuedJobSchema),
        FlowRequest: toJsonSchema(s.flowBodySchema),
        EnqueuedFlow: toJsonSchema(s.enqueuedFlowSchema),
        BatchRequest: toJsonSchema(s.batchBodySchema),
        EnqueuedBatch: toJsonSchema(s.enqueuedBatchSchema),
        Batch: toJsonSchema(s.batchSchema),
        Graph: toJsonSchema(s.graphSchema),
        LogLine: toJsonSchema(s.logLineSchema),
        LogList: toJsonSchema(s.logListSchema),
        EventEnd: toJsonSchema(s.eventEndSchema),
        JobError: toJsonSchema(s.jobErrorSchema),
        JobList: toJsonSchema(s.jobListSchema),
        QueueList: toJsonSchema(s.queueListSchema),
        Queue: toJsonSchema(s.queueSchema),
        QueueConfig: toJsonSchema(s.queueConfigSchema),
        QueueLimitsRequest: toJsonSchema(s.queueLimitsBodySchema),
        Schedule: toJsonSchema(s.scheduleSchema),
        ScheduleList: toJsonSchema(s.scheduleListSchema),
        ScheduleRequest: toJsonSchema(s.scheduleBodySchema),
        TriggerRequest: toJsonSchema(s.triggerBodySchema),
        PruneRequest: toJsonSchema(s.pruneBodySchema),
        PruneResult: toJsonSchema(s.pruneResultSchema),
        Stats: toJsonSchema(s.statsSchema),
        WorkerList: toJsonSchema(s.workerListSchema),
        Health: toJsonSchema(s.healthSchema),
        Error: toJsonSchema(s.errorSchema),
      },
    },
  };
}
