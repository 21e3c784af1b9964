// The API's shapes, in valibot, one file per resource under schemas/. Request
// schemas validate input; response schemas document output (and tests check
// responses against them). Both feed GET /openapi.json through json-schema.ts,
// so the docs cannot drift.
export * from "./schemas/common.ts";
export * from "./schemas/jobs.ts";
export * from "./schemas/queues.ts";
export * from "./schemas/schedules.ts";
export * from "./schemas/workflows.ts";
