import { PgPulseError } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import { type Active, signalOf } from "./attempt.ts";
import type { JobContext, JobLog, ParentJob } from "./context.ts";
import type { JobLogLevel, LogWriter } from "./logs.ts";
import type { ProgressWriter } from "./progress.ts";

export interface JobContextDeps {
  workerId: string;
  logger: Logger;
  progress: Pick<ProgressWriter, "set">;
  logs: Pick<LogWriter, "add">;
  parents(jobId: string): Promise<ParentJob[]>;
}

/**
 * Where a context keeps its attempt: a member of its own, keyed by a symbol
 * no handler can name. Set in the object literal (a defineProperty() per job
 * cost about half a microsecond), so it is enumerable and a spread copy
 * carries it too, which is harmless: the copy's signal is the value read when
 * it was made.
 */
const ENTRY = Symbol("pgpulse.attempt");

/**
 * `signal` is an accessor, so that the AbortController is made only for a
 * handler that reads it (making one and its signal costs microseconds). It is
 * defined from one descriptor shared by every context: an object literal with
 * a getter of its own costs about a microsecond a job to make, most of a
 * no-op job's share. Like a literal's getter it is the context's own and
 * enumerable (a copy `{ ...ctx }` reads it) and has no setter. Unlike one, it
 * finds the attempt through `this`: read from an object that is not the
 * context (a getter copied onto another object, a Proxy that hides the
 * context's symbols) it throws, saying so.
 */
const SIGNAL: PropertyDescriptor = {
  get(this: { [ENTRY]?: Active } | undefined) {
    const entry = this?.[ENTRY];
    if (!entry) {
      throw new PgPulseError(
        "INVALID_INPUT",
        "ctx.signal was read from an object that is not the handler's ctx (a getter copied off it, or a Proxy hiding its members): pass ctx itself, or a spread copy { ...ctx }",
      );
    }
    return signalOf(entry);
  },
  enumerable: true,
  configurable: true,
};

/**
 * A run's context: the job, its signal, and functions that work taken apart
 * from it (`const { progress, log } = ctx`) and do nothing once the attempt
 * has ended. Every member a handler uses is the context's own: a spread copy
 * has them all, and a middleware may replace one.
 */
export function jobContext(entry: Active, deps: JobContextDeps): JobContext {
  const { job } = entry;
  const logAt = (level: JobLogLevel) => (message: string, fields?: Record<string, unknown>) => {
    if (!entry.settled) deps.logs.add(job.id, job.attempt, level, message, fields);
  };
  const log = logAt("info") as JobLog;
  log.debug = logAt("debug");
  log.info = log;
  log.warn = logAt("warn");
  log.error = logAt("error");
  const ctx = {
    job,
    workerId: deps.workerId,
    logger: deps.logger,
    log,
    parents: () => deps.parents(job.id),
    progress(percent: number) {
      if (entry.settled) return;
      if (typeof percent !== "number" || !Number.isFinite(percent)) {
        throw new PgPulseError("INVALID_INPUT", `progress must be a number from 0 to 100, got ${String(percent)}`);
      }
      deps.progress.set(job.id, job.attempt, Math.round(Math.min(100, Math.max(0, percent))));
    },
    [ENTRY]: entry,
  } satisfies Omit<JobContext, "signal"> & { [ENTRY]: Active };
  Object.defineProperty(ctx, "signal", SIGNAL);
  return ctx as typeof ctx & { readonly signal: AbortSignal };
}
