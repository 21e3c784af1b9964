/**
 * OpenTelemetry tracing for pgpulse, opt-in: `pgpulse/otel`, with
 * `@opentelemetry/api` as an optional peer dependency (the core never imports it).
 *
 *   import { otelEnqueue, otelRun } from "pgpulse/otel";
 *   queue.use(otelEnqueue());   // a PRODUCER span per enqueue call, its context stored with the jobs
 *   worker.use(otelRun());      // a CONSUMER span per run, a child of the span that enqueued the job
 *
 * Spans follow OpenTelemetry's messaging conventions: `send <queue>` and
 * `process <queue>`, with `messaging.system` "pgpulse",
 * `messaging.destination.name` (the queue), `messaging.operation.type`,
 * `messaging.message.id` (the job id), and `pgpulse.task` and `pgpulse.attempt`.
 * The enqueue span's context is injected with the globally registered
 * propagator (W3C trace context in the SDKs' defaults) into each job's `meta`,
 * which every attempt reads back: each run, retries included, continues the
 * trace of the request that enqueued the job.
 */
import { context, propagation, type Span, SpanKind, SpanStatusCode, type Tracer, trace } from "@opentelemetry/api";
import { type EnqueueCall, type EnqueuedJob, JobReleasedError, JobSnooze, type JobSpec, type QueueMiddleware, type WorkerMiddleware } from "../index.ts";

const SYSTEM = "pgpulse";
const TRACER_NAME = "pgpulse";

export interface OtelOptions {
  /** The tracer to use. @default trace.getTracer("pgpulse") */
  tracer?: Tracer;
}

/** Queue middleware: a PRODUCER span around each enqueue call, its context stored in the jobs' meta. */
export function otelEnqueue(options: OtelOptions = {}): QueueMiddleware {
  return async (call: EnqueueCall, next) => {
    const tracer = options.tracer ?? trace.getTracer(TRACER_NAME);
    const specs: JobSpec[] = [...call.specs, ...Object.values(call.callbacks ?? {})];
    const queues = [...new Set(specs.map((s) => s.queue ?? "default"))];
    const destination = queues.length === 1 ? queues[0]! : undefined;
    const span = tracer.startSpan(destination ? `send ${destination}` : "send", {
      kind: SpanKind.PRODUCER,
      attributes: {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "send",
        "messaging.operation.name": call.op,
        ...(destination ? { "messaging.destination.name": destination } : {}),
        ...(specs.length > 1 ? { "messaging.batch.message_count": specs.length } : {}),
      },
    });
    const inSpan = trace.setSpan(context.active(), span);
    const carrier: Record<string, string> = {};
    propagation.inject(inSpan, carrier);
    if (Object.keys(carrier).length > 0) {
      for (const spec of specs) spec.meta = { ...spec.meta, ...carrier };
    }
    try {
      const jobs: EnqueuedJob[] = await context.with(inSpan, next);
      if (jobs.length === 1) span.setAttribute("messaging.message.id", jobs[0]!.id);
      return jobs;
    } catch (error) {
      fail(span, error);
      throw error;
    } finally {
      span.end();
    }
  };
}

/** Worker middleware: a CONSUMER span around each run, a child of the context the job was enqueued in. */
export function otelRun(options: OtelOptions = {}): WorkerMiddleware {
  return async (ctx, next) => {
    const tracer = options.tracer ?? trace.getTracer(TRACER_NAME);
    const { job } = ctx;
    const parent = job.meta ? propagation.extract(context.active(), job.meta) : context.active();
    const span = tracer.startSpan(
      `process ${job.queue}`,
      {
        kind: SpanKind.CONSUMER,
        attributes: {
          "messaging.system": SYSTEM,
          "messaging.operation.type": "process",
          "messaging.destination.name": job.queue,
          "messaging.message.id": job.id,
          "pgpulse.task": job.task,
          "pgpulse.attempt": job.attempt,
          "pgpulse.worker": ctx.workerId,
        },
      },
      parent,
    );
    // The attempt ends when the handler returns, or when it is aborted (a timeout, a cancel, a
    // release): the span ends with the attempt, not with a handler that ignores its signal.
    // (The handler's own promise is left as it is: middleware around this one see it unchanged.)
    let ended = false;
    const end = (error?: unknown) => {
      if (ended) return;
      ended = true;
      // A snooze or a release is not a failure: the job runs again, unspent.
      if (error instanceof JobSnooze) span.addEvent("snoozed", { "pgpulse.delay_ms": error.delayMs });
      else if (error instanceof JobReleasedError) span.addEvent("released");
      else if (error !== undefined) fail(span, error);
      span.end();
    };
    const { signal } = ctx;
    const onAbort = () => end(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      return await context.with(trace.setSpan(parent, span), next);
    } catch (error) {
      end(error);
      throw error;
    } finally {
      signal.removeEventListener("abort", onAbort);
      end();
    }
  };
}

function fail(span: Span, error: unknown): void {
  if (error instanceof Error) span.recordException(error);
  span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
}
