// API errors: one JSON shape for every failure, `{ "error": { "code", "message", "details" } }`.
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { PgPulseError } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";

/** Codes the HTTP API answers with. The pgpulse codes pass through; the rest are HTTP's. */
export type ApiErrorCode =
  | "INVALID_INPUT"
  | "INVALID_PAYLOAD"
  | "UNAUTHORIZED"
  | "FORBIDDEN"
  | "NOT_FOUND"
  | "INVALID_TRANSITION"
  | "INVALID_GRAPH"
  | "GRAPH_TOO_LARGE"
  | "EMPTY_FILTER"
  | "PAYLOAD_TOO_LARGE"
  | "UNSUPPORTED_MEDIA_TYPE"
  | "TOO_MANY_REQUESTS"
  | "UNAVAILABLE"
  | "INTERNAL";

export interface ApiErrorBody {
  error: { code: ApiErrorCode; message: string; details: unknown };
}

/** An error with its HTTP status; thrown by handlers, turned into JSON by `onError`. */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: ApiErrorCode,
    message: string,
    readonly details: unknown = null,
  ) {
    super(message);
  }
}

const STATUS_OF: Partial<Record<PgPulseError["code"], [ContentfulStatusCode, ApiErrorCode]>> = {
  INVALID_INPUT: [400, "INVALID_INPUT"],
  INVALID_PAYLOAD: [400, "INVALID_PAYLOAD"],
  NOT_FOUND: [404, "NOT_FOUND"],
  INVALID_TRANSITION: [409, "INVALID_TRANSITION"],
  INVALID_GRAPH: [400, "INVALID_GRAPH"],
  GRAPH_TOO_LARGE: [413, "GRAPH_TOO_LARGE"],
  EMPTY_FILTER: [400, "EMPTY_FILTER"],
  CLOSED: [503, "UNAVAILABLE"],
};

// postgres.js / socket codes that mean "the database is not there right now".
const UNAVAILABLE_CODES = new Set([
  "ECONNREFUSED", "ENOTFOUND", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ECONNRESET", "EAI_AGAIN", "EPIPE",
  "CONNECT_TIMEOUT", "CONNECTION_CLOSED", "CONNECTION_ENDED", "CONNECTION_DESTROYED",
  "57P01", "57P02", "57P03", "53300", "3D000", "28P01", "28000",
  "42P01", "3F000", // the schema or its tables are missing: not migrated
]);

/** Turns anything thrown into an ApiError; unexpected errors become a 500 that reveals nothing. */
export function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof PgPulseError) {
    const mapped = STATUS_OF[error.code];
    if (mapped) return new ApiError(mapped[0], mapped[1], error.message, error.details ?? null);
  }
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string" && UNAVAILABLE_CODES.has(code)) {
    return new ApiError(503, "UNAVAILABLE", code === "42P01" || code === "3F000"
      ? "the pgpulse schema is missing: run `pgpulse migrate`"
      : "the database is unavailable", { reason: code });
  }
  // Safety net: Postgres refusing a value (data exceptions, class 22; nesting
  // past its stack, 54001) is about the input. The API checks first, so this is rare.
  if (typeof code === "string" && (/^22[0-9A-Z]{3}$/.test(code) || code === "54001")) {
    return new ApiError(400, "INVALID_INPUT", "the database refused a value in this request", { reason: code });
  }
  return new ApiError(500, "INTERNAL", "internal error");
}

export function errorJson(c: Context, error: ApiError): Response {
  const body: ApiErrorBody = { error: { code: error.code, message: error.message, details: error.details ?? null } };
  const res = c.json(body, error.status);
  if (error.status === 401) res.headers.set("WWW-Authenticate", 'Bearer realm="pgpulse"');
  return res;
}

/** The app's onError: logs what was not expected, answers JSON. */
export function onApiError(logger: Logger) {
  return (error: unknown, c: Context): Response => {
    const apiError = toApiError(error);
    if (apiError.status >= 500) {
      logger.error(`${c.req.method} ${c.req.path}: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
    }
    return errorJson(c, apiError);
  };
}
