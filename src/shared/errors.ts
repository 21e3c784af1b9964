/**
 * Errors pgpulse throws carry a stable `code`; handlers throw the intent errors
 * (`PermanentError`, and the signal reasons below) to steer what happens next.
 */

/** Stable error codes. New codes may be added; existing ones never change meaning. */
export type ErrorCode =
  | "INVALID_INPUT"
  | "INVALID_PAYLOAD"
  | "NOT_FOUND"
  | "INVALID_TRANSITION"
  | "SCHEMA_TOO_NEW"
  | "MIGRATION_CHANGED"
  | "CLOSED"
  | "INVALID_STATE"
  /** A workflow's graph is not one: a cycle, an unknown or repeated name, a bad edge. */
  | "INVALID_GRAPH"
  /** A workflow or batch has more jobs or edges than one call takes. */
  | "GRAPH_TOO_LARGE"
  /** deleteJobs was given a filter that matches every job, without `all: true`. */
  | "EMPTY_FILTER";

/** An issue found in user input: where (a dotted path) and what is wrong. */
export interface InputIssue {
  path: string;
  message: string;
}

/** The one error class pgpulse throws for bad input, bad state or missing rows. */
export class PgPulseError extends Error {
  override name = "PgPulseError";
  readonly code: ErrorCode;
  readonly details?: readonly InputIssue[] | Record<string, unknown>;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; details?: readonly InputIssue[] | Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    if (options.details !== undefined) this.details = options.details;
  }
}

/**
 * Thrown by a handler to fail the job at once, whatever attempts remain
 * (a payload that can never succeed, a resource that is gone).
 */
export class PermanentError extends Error {
  override name = "PermanentError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * Thrown by a handler to run the job again after `delayMs`, without spending
 * an attempt (waiting on something outside, a resource that is busy).
 *
 * @example throw new JobSnooze(60_000);
 */
export class JobSnooze extends Error {
  override name = "JobSnooze";
  constructor(readonly delayMs: number) {
    super(`snoozed for ${delayMs} ms`);
    if (!Number.isInteger(delayMs) || delayMs < 0 || delayMs > 2_147_483_647) {
      throw new PgPulseError("INVALID_INPUT", `JobSnooze takes a whole number of ms from 0 to 2147483647, got ${delayMs}`);
    }
  }
}

/** The reason `ctx.signal` aborts with when the attempt ran past its timeout. */
export class JobTimeoutError extends Error {
  override name = "JobTimeoutError";
  constructor(readonly timeoutMs: number) {
    super(`job timed out after ${timeoutMs} ms`);
  }
}

/** The reason `ctx.signal` aborts with when someone cancelled the running job. */
export class JobCancelledError extends Error {
  override name = "JobCancelledError";
  constructor() {
    super("job was cancelled");
  }
}

/**
 * The reason `ctx.signal` aborts with when the worker gives the job back:
 * a graceful stop that ran out of time, or a worker that lost its lease.
 * The job runs again elsewhere.
 */
export class JobReleasedError extends Error {
  override name = "JobReleasedError";
  constructor(reason: string) {
    super(`job released by the worker: ${reason}`);
  }
}
