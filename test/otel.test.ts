import { context, propagation, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { afterAll, describe, expect, it } from "vitest";
import { createQueue, JobSnooze } from "../src/index.ts";
import { otelEnqueue, otelRun } from "../src/otel/index.ts";
import { DATABASE_URL, deadline, gate, testDb, until } from "./support/db.ts";

// pgpulse/otel with the OpenTelemetry SDK's in-memory exporter: a span per
// enqueue and one per run, the run's a child of the enqueue's, across retries.
const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const contextManager = new AsyncLocalStorageContextManager().enable();
context.setGlobalContextManager(contextManager);
propagation.setGlobalPropagator(new W3CTraceContextPropagator());
trace.setGlobalTracerProvider(provider);
afterAll(async () => {
  await provider.shutdown();
  trace.disable();
  propagation.disable();
  context.disable();
});

const db = await testDb(import.meta.url);

describe("pgpulse/otel", () => {
  it("a run continues the trace of the request that enqueued it, on every attempt", async () => {
    const queue = createQueue({ connection: DATABASE_URL, schema: db.schema }).use(otelEnqueue());
    const tracer = trace.getTracer("app");
    let innerTraceId: string | undefined;
    const w = db.worker({
      queues: ["otel"],
      backoff: { baseMs: 1, maxMs: 1 },
      tasks: {
        flaky: async (_p, ctx) => {
          // the handler runs inside the run's span: its own spans are children of it
          innerTraceId = trace.getActiveSpan()?.spanContext().traceId;
          if (ctx.job.attempt === 1) throw new Error("first attempt fails");
          return "ok";
        },
      },
    }).use(otelRun());
    try {
      const request = tracer.startSpan("POST /signup", { kind: SpanKind.SERVER });
      const job = await context.with(trace.setSpan(context.active(), request), () => queue.enqueue("flaky", {}, { queue: "otel", maxAttempts: 2 }));
      request.end();
      expect(job.meta!.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
      const done = w.waitFor("job:completed", (e) => e.job.id === job.id, deadline());
      await w.start();
      await done;
      await until(() => exporter.getFinishedSpans().filter((s) => s.name === "process otel").length === 2);

      const spans = exporter.getFinishedSpans();
      const send = spans.find((s) => s.name === "send otel")!;
      const runs = spans.filter((s) => s.name === "process otel");
      const traceId = request.spanContext().traceId;
      expect(send.kind).toBe(SpanKind.PRODUCER);
      expect(send.spanContext().traceId).toBe(traceId);
      expect(send.parentSpanContext?.spanId).toBe(request.spanContext().spanId);
      expect(send.attributes).toMatchObject({
        "messaging.system": "pgpulse", "messaging.operation.type": "send", "messaging.destination.name": "otel", "messaging.message.id": job.id,
      });
      for (const run of runs) {
        expect(run.kind).toBe(SpanKind.CONSUMER);
        expect(run.spanContext().traceId).toBe(traceId);
        expect(run.parentSpanContext?.spanId).toBe(send.spanContext().spanId);
        expect(run.attributes).toMatchObject({ "messaging.operation.type": "process", "messaging.message.id": job.id, "pgpulse.task": "flaky" });
      }
      expect(runs.map((r) => [r.attributes["pgpulse.attempt"], r.status.code])).toEqual([
        [1, SpanStatusCode.ERROR],
        [2, SpanStatusCode.UNSET],
      ]);
      expect(runs[0]!.events.map((e) => e.name)).toContain("exception");
      expect(innerTraceId).toBe(traceId);
    } finally {
      await queue.close();
    }
  });

  it("one span for a bulk enqueue, its context in every job; a job enqueued without a trace starts one of its own", async () => {
    exporter.reset();
    const queue = createQueue({ connection: DATABASE_URL, schema: db.schema }).use(otelEnqueue());
    try {
      const jobs = await queue.enqueueMany([{ task: "t", queue: "otel-bulk" }, { task: "t", queue: "otel-bulk" }]);
      const [send] = exporter.getFinishedSpans();
      expect(send!.attributes).toMatchObject({ "messaging.batch.message_count": 2 });
      expect(send!.parentSpanContext).toBeUndefined();
      for (const job of jobs) expect(job.meta!.traceparent).toContain(send!.spanContext().spanId);
      await expect(queue.enqueue("", {})).rejects.toMatchObject({ code: "INVALID_INPUT" });
      const refused = exporter.getFinishedSpans().at(-1)!;
      expect(refused.status.code).toBe(SpanStatusCode.ERROR);
    } finally {
      await queue.close();
    }
  });

  it("a run that times out ends its span as an error when the attempt ends, not when a handler that ignores its signal returns", async () => {
    exporter.reset();
    const stuck = gate();
    let outerSettled = false;
    const w = db.worker({ queues: ["otel-timeout"], tasks: { slow: async () => (await stuck.promise, "late") } })
      .use(async (_ctx, next) => {
        try {
          return await next();
        } finally {
          outerSettled = true;
        }
      })
      .use(otelRun());
    const queue = createQueue({ connection: DATABASE_URL, schema: db.schema });
    try {
      const job = await queue.enqueue("slow", {}, { queue: "otel-timeout", timeoutMs: 100, maxAttempts: 1 });
      const failed = w.waitFor("job:failed", (e) => e.job.id === job.id, deadline());
      await w.start();
      await failed;
      // (the handler is still stuck: the span ended with the attempt)
      await until(() => exporter.getFinishedSpans().some((s) => s.name === "process otel-timeout"));
      const span = exporter.getFinishedSpans().find((s) => s.name === "process otel-timeout")!;
      expect(span.status).toMatchObject({ code: SpanStatusCode.ERROR, message: expect.stringContaining("timed out") });
      // the middleware around it still sees the handler's own promise, unsettled while it runs
      expect(outerSettled).toBe(false);
      stuck.open();
      await until(() => outerSettled);
    } finally {
      stuck.open();
      await queue.close();
    }
  });

  it("a snooze is not an error: the span records it as an event", async () => {
    exporter.reset();
    const w = db.worker({ queues: ["otel-snooze"], tasks: { napper: async (_p, ctx) => { if (ctx.job.attempt === 1) throw new JobSnooze(0); return "ok"; } } }).use(otelRun());
    const queue = createQueue({ connection: DATABASE_URL, schema: db.schema });
    try {
      const job = await queue.enqueue("napper", {}, { queue: "otel-snooze" });
      const snoozed = w.waitFor("job:snoozed", (e) => e.job.id === job.id, deadline());
      await w.start();
      await snoozed;
      await until(() => exporter.getFinishedSpans().some((s) => s.name === "process otel-snooze"));
      const span = exporter.getFinishedSpans().find((s) => s.name === "process otel-snooze")!;
      expect(span.status.code).not.toBe(SpanStatusCode.ERROR);
      expect(span.events.map((e) => e.name)).toEqual(["snoozed"]);
    } finally {
      await queue.close();
    }
  });
});
