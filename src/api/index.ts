/**
 * pgpulse/api: the HTTP API and dashboard, as a Hono app.
 *
 *   import { createApi } from "pgpulse/api";
 *   app.route("/pgpulse", createApi({ queue, auth: { tokens: [process.env.PGPULSE_API_TOKEN!] } }));
 *
 * A separate entry so that the core ("pgpulse") does not pull in hono.
 */
export { createApi } from "./app.ts";
export type { ApiCorsOptions, ApiOptions } from "./app.ts";
export type { ApiAuthOptions, Role } from "./auth.ts";
export { MAX_BODY_BYTES_DEFAULT } from "./body.ts";
export { ApiError } from "./errors.ts";
export type { ApiErrorBody, ApiErrorCode } from "./errors.ts";
export type { Health } from "./health.ts";
export { toJsonSchema } from "./json-schema.ts";
export type { JsonSchema } from "./json-schema.ts";
export { RUN_SECONDS_BUCKETS } from "../db/status.ts";
export { API_VERSION, openApiDocument } from "./openapi.ts";
export {
  batchBodySchema,
  batchSchema,
  bulkBodySchema,
  bulkResultSchema,
  deleteBodySchema,
  enqueueBodySchema,
  enqueuedBatchSchema,
  enqueuedFlowSchema,
  enqueuedJobSchema,
  errorSchema,
  eventEndSchema,
  flowBodySchema,
  graphSchema,
  healthSchema,
  jobListSchema,
  jobSchema,
  listJobsQuerySchema,
  logLineSchema,
  logListSchema,
  pruneBodySchema,
  pruneResultSchema,
  queueConfigSchema,
  queueLimitsBodySchema,
  queueListSchema,
  queueSchema,
  scheduleBodySchema,
  scheduleListSchema,
  scheduleSchema,
  statsQuerySchema,
  statsSchema,
  triggerBodySchema,
  workerListSchema,
} from "./schemas.ts";
