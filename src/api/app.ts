// createApi: the HTTP API and dashboard as a Hono app, to mount in your own
// Hono app or serve as it is (`pgpulse serve`). Imports no node: module.
import { Hono, type MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import { PgPulseError } from "../shared/errors.ts";
import { consoleLogger, type Logger, type LogLevel } from "../shared/logger.ts";
import type { Queue } from "../producer/types.ts";
import type { Worker } from "../worker/types.ts";
import { type ApiAuthOptions, type AuthEnv, createAuthenticator, requireBearer } from "./auth.ts";
import { MAX_BODY_BYTES_DEFAULT } from "./body.ts";
import { bulkRoutes } from "./bulk.ts";
import { dashboardRoutes } from "./dashboard/routes.tsx";
import { ApiError, errorJson, onApiError } from "./errors.ts";
import { eventRoutes } from "./events.ts";
import { trackListeners } from "./health.ts";
import { jobRoutes } from "./jobs.ts";
import { openApiDocument } from "./openapi.ts";
import { queueRoutes } from "./queues.ts";
import { scheduleRoutes } from "./schedules.ts";
import { healthRoute, statusRoutes } from "./status.ts";
import { workflowRoutes } from "./workflows.ts";

export interface ApiCorsOptions {
  /** Allowed origins: a list, or a function returning the origin to allow (or null). */
  origin: string | readonly string[] | ((origin: string) => string | null | undefined);
  /** Preflight cache time in seconds. @default 600 */
  maxAge?: number;
}

export interface ApiOptions {
  /** The queue to serve (its pool and schema). The API never closes it. */
  queue: Queue;
  /** Bearer tokens. @default PGPULSE_API_TOKEN and PGPULSE_API_READ_ONLY_TOKEN; with none at all, createApi throws. */
  auth?: ApiAuthOptions;
  /** CORS for the JSON endpoints. @default off */
  cors?: ApiCorsOptions;
  /** Largest request body, in bytes. @default 1 MiB */
  maxBodyBytes?: number;
  /** Workers in this process whose LISTEN state /healthz reports. Hand them over before starting them. */
  workers?: readonly Worker[];
  /** The dashboard at /dashboard, or false for none. */
  dashboard?: false | { /** How often an open page refreshes itself. @default 2000 */ refreshMs?: number };
  /** How long /healthz waits for the database. @default 2000 */
  healthTimeoutMs?: number;
  /** Where unexpected (500) errors are logged. @default console, errors only */
  logger?: Logger | LogLevel;
  /** Event streams (GET /jobs/:id/events). Each open stream holds a database connection of its own. */
  events?: {
    /** A comment is sent this often on a quiet stream, so proxies keep it open. @default 15000 */
    keepAliveMs?: number;
    /** Streams open at once; one more is answered 429. @default 20 */
    maxStreams?: number;
  };
  /** Abort it when the server stops: open event streams end (clients reconnect elsewhere), new ones are refused (503). */
  signal?: AbortSignal;
}

/** Paths that need a bearer token (everything the API serves but /healthz and the dashboard, which has its own login). */
const PROTECTED = [
  "/jobs", "/jobs/*", "/flows", "/batches", "/batches/*", "/queues", "/queues/*", "/schedules", "/schedules/*", "/prune", "/stats",
  "/workers", "/metrics", "/openapi.json",
];

export function createApi(options: ApiOptions): Hono {
  const { queue } = options;
  if (!queue || typeof queue.getJob !== "function") throw new TypeError("createApi needs { queue }: a pgpulse queue from createQueue()");
  const auth = createAuthenticator(options.auth);
  const maxBodyBytes = positiveInt(options.maxBodyBytes, MAX_BODY_BYTES_DEFAULT, "maxBodyBytes");
  const refreshMs = positiveInt(options.dashboard ? options.dashboard.refreshMs : undefined, 2000, "dashboard.refreshMs");
  const healthTimeoutMs = positiveInt(options.healthTimeoutMs, 2000, "healthTimeoutMs");
  const keepAliveMs = positiveInt(options.events?.keepAliveMs, 15_000, "events.keepAliveMs");
  const maxStreams = positiveInt(options.events?.maxStreams, 20, "events.maxStreams");
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
    throw new PgPulseError("INVALID_INPUT", "signal must be an AbortSignal", { details: [{ path: "signal", message: "not an AbortSignal" }] });
  }
  const logger = typeof options.logger === "object" ? options.logger : consoleLogger("api", options.logger ?? "error");
  const listener = trackListeners(options.workers ?? []);

  const app = new Hono<AuthEnv>();
  app.onError(onApiError(logger));
  app.notFound((c) => errorJson(c, new ApiError(404, "NOT_FOUND", `no route for ${c.req.method} ${c.req.path}`)));
  app.use("*", nosniff);
  if (options.cors) {
    const corsMiddleware = cors({
      origin: options.cors.origin as string | string[] | ((origin: string) => string | null | undefined),
      allowMethods: ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
      allowHeaders: ["Authorization", "Content-Type"],
      exposeHeaders: ["Location"],
      maxAge: options.cors.maxAge ?? 600,
    });
    for (const path of [...PROTECTED, "/healthz"]) app.use(path, corsMiddleware);
  }
  app.route("/", healthRoute(queue, listener, healthTimeoutMs));
  if (options.dashboard !== false) {
    app.route("/dashboard", dashboardRoutes({ queue, auth, logger, refreshMs, maxBodyBytes }));
  }
  for (const path of PROTECTED) app.use(path, requireBearer(auth));
  app.route("/", bulkRoutes(queue, maxBodyBytes));
  app.route("/", jobRoutes(queue, maxBodyBytes));
  app.route("/", workflowRoutes(queue, maxBodyBytes));
  app.route("/", eventRoutes(queue, { keepAliveMs, maxStreams, ...(options.signal ? { signal: options.signal } : {}) }, logger));
  app.route("/", statusRoutes(queue));
  app.route("/", queueRoutes(queue, maxBodyBytes));
  app.route("/", scheduleRoutes(queue, maxBodyBytes));
  const documents = new Map<string, Record<string, unknown>>(); // by mount point
  app.get("/openapi.json", (c) => {
    const base = c.req.path.slice(0, -"/openapi.json".length) || "/";
    let document = documents.get(base);
    if (!document) documents.set(base, (document = openApiDocument(base)));
    return c.json(document);
  });
  return app as unknown as Hono;
}

function positiveInt(value: number | undefined, fallback: number, path: string): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new PgPulseError("INVALID_INPUT", `${path} must be a whole number of at least 1, got ${String(value)}`, {
      details: [{ path, message: "not a positive integer" }],
    });
  }
  return value;
}

const nosniff: MiddlewareHandler = async (c, next) => {
  await next();
  c.res.headers.set("X-Content-Type-Options", "nosniff");
};
