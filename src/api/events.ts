// GET /jobs/:id/events: a job's changes as server-sent events, until it ends.
// Driven by queue.watch (LISTEN on pgpulse_job), not by polling: each watch
// holds a connection of its own, so streams are counted and capped, and a
// stream's watch stops as soon as its client goes away.
import { type Context, Hono } from "hono";
import { type SSEStreamingApi, streamSSE } from "hono/streaming";
import { DROPPED_SEQ } from "../db/logs.ts";
import type { JobEvent, Queue } from "../producer/types.ts";
import { PgPulseError } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import type { Job } from "../shared/types.ts";
import type { AuthEnv } from "./auth.ts";
import { ApiError, type ApiErrorBody, errorJson, toApiError } from "./errors.ts";
import { readQuery } from "./query.ts";
import { eventsQuerySchema, jobIdSchema, lastEventIdSchema, validate } from "./schemas.ts";

export interface EventStreamOptions {
  /** A comment line is sent this often on a quiet stream, so proxies and clients keep it open. */
  keepAliveMs: number;
  /** Streams open at once, across this app; one more is answered 429. */
  maxStreams: number;
  /** Aborted when the server stops: open streams end (their clients reconnect elsewhere), new ones get 503. */
  signal?: AbortSignal;
}

const FINAL = new Set<Job["status"]>(["completed", "failed", "cancelled"]);

export function eventRoutes(queue: Queue, options: EventStreamOptions, logger: Logger): Hono<AuthEnv> {
  const app = new Hono<AuthEnv>();
  let open = 0;

  app.get("/jobs/:id/events", async (c) => {
    const id = validate(jobIdSchema, c.req.param("id"), "job id");
    const query = validate(eventsQuerySchema, readQuery(c, ["after"]), "query");
    const lastEventId = c.req.header("last-event-id");
    const after = lastEventId ? validate(lastEventIdSchema, lastEventId, "Last-Event-ID header") : (query.after ?? 0);
    if (options.signal?.aborted) return stopping(c);
    // A cheap read from the pool first: no connection of its own is opened for a job that is not there.
    if (!(await queue.getJob(id))) throw new ApiError(404, "NOT_FOUND", `no job with id ${id}`);
    if (open >= options.maxStreams) {
      c.header("Retry-After", "5");
      throw new ApiError(429, "TOO_MANY_REQUESTS", `too many event streams are open (the limit is ${options.maxStreams}); try again later`, {
        limit: options.maxStreams,
      });
    }

    // One signal for the watch: the client went away (the request's signal, or the
    // response stream cancelled), or the server is stopping.
    open++;
    const stop = new AbortController();
    const abort = () => stop.abort();
    const request = c.req.raw.signal;
    request.addEventListener("abort", abort);
    options.signal?.addEventListener("abort", abort);
    if (request.aborted) abort();
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      open--;
      request.removeEventListener("abort", abort);
      options.signal?.removeEventListener("abort", abort);
    };

    // The first event is read before answering: a job deleted meanwhile is a 404, not a stream.
    let events: AsyncIterableIterator<JobEvent>;
    let first: IteratorResult<JobEvent>;
    try {
      events = queue.watch(id, { signal: stop.signal });
      first = await events.next();
    } catch (error) {
      release();
      if (error instanceof PgPulseError && error.code === "INVALID_STATE") {
        // The queue cannot follow jobs (a transaction-mode pooler carries no LISTEN): not the client's fault, not a crash.
        throw new ApiError(503, "UNAVAILABLE", error.message, { reason: "no-listen" });
      }
      throw error;
    }
    if (first.done) {
      // Aborted before the first read: the server is stopping, or the client has gone (and reads no answer).
      release();
      return stopping(c);
    }

    c.header("X-Accel-Buffering", "no"); // nginx: pass each event on as it comes
    return streamSSE(c, async (stream) => {
      stream.onAbort(abort);
      const keepAlive = setInterval(() => void stream.write(": keep-alive\n\n"), options.keepAliveMs);
      let event: JobEvent = first.value;
      try {
        for (;;) {
          await send(stream, event, after);
          const next = await events.next();
          if (next.done) break;
          event = next.value;
        }
        // The watch ends after a final status, or when the job was deleted while followed.
        if (!stop.signal.aborted) {
          const status = FINAL.has(event.job.status) ? event.job.status : null;
          await stream.writeSSE({ event: "end", data: JSON.stringify({ id, status }) });
        }
      } catch (error) {
        if (!stop.signal.aborted) {
          const apiError = toApiError(error);
          if (apiError.status >= 500) logger.error(`GET ${c.req.path}: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
          const body: ApiErrorBody = { error: { code: apiError.code, message: apiError.message, details: apiError.details ?? null } };
          await stream.writeSSE({ event: "error", data: JSON.stringify(body) });
        }
      } finally {
        clearInterval(keepAlive);
        abort();
        await events.return?.(undefined);
        release();
      }
    });
  });

  return app;
}

/** 503 while the server stops: expected, so answered here rather than thrown (and logged as an error). */
function stopping(c: Context): Response {
  return errorJson(c, new ApiError(503, "UNAVAILABLE", "the server is stopping", { reason: "stopping" }));
}

/** A change: its new log lines (each with its seq as the event id; the dropped line, updated in place, whenever it comes), then the job. */
async function send(stream: SSEStreamingApi, event: JobEvent, after: number): Promise<void> {
  for (const line of event.logs) {
    if (line.seq > after || line.seq === DROPPED_SEQ) await stream.writeSSE({ event: "log", id: String(line.seq), data: JSON.stringify(line) });
  }
  await stream.writeSSE({ event: "job", data: JSON.stringify(event.job) });
}
