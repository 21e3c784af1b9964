import { describe, expect, it } from "vitest";
import { createQueue, defineTask, type EnqueueCall, PermanentError, PgPulseError } from "../src/index.ts";
import { DATABASE_URL, deadline, testDb } from "./support/db.ts";
import * as v from "valibot";

// Middleware around handler runs (worker.use) and around enqueue calls (queue.use).
const db = await testDb(import.meta.url);
const { sql, schema } = db;
const s = `"${schema}"`;
const count = async (queueName: string) =>
  (await sql.unsafe(`select count(*)::int as n from ${s}.jobs where queue = $1`, [queueName]))[0]!.n as number;

describe("worker middleware", () => {
  it("wraps each run in order, sees the job, and may change the result", async () => {
    const trace: string[] = [];
    const w = db.worker({
      queues: ["mw-order"],
      middleware: [
        async (ctx, next) => {
          trace.push(`outer in ${ctx.job.task}`);
          const result = await next();
          trace.push("outer out");
          return { wrapped: result };
        },
      ],
      tasks: { t: async (p: { n: number }) => (trace.push("handler"), p.n * 2) },
    });
    w.use(async (ctx, next) => {
      trace.push(`inner in attempt ${ctx.job.attempt}`);
      const result = await next();
      trace.push("inner out");
      return result;
    });
    const job = await db.queue.enqueue("t", { n: 21 }, { queue: "mw-order" });
    const done = w.waitFor("job:completed", (e) => e.job.id === job.id, deadline());
    await w.start();
    expect((await done).result).toEqual({ wrapped: 42 });
    expect(trace).toEqual(["outer in t", "inner in attempt 1", "handler", "inner out", "outer out"]);
  });

  it("a throw from middleware follows the handler's retry rules, and a payload refused by the task's schema passes through it", async () => {
    const seen: string[] = [];
    const strict = defineTask({ name: "strict", schema: v.object({ n: v.number() }), handler: async () => "ran" });
    const w = db.worker({
      queues: ["mw-throw"],
      backoff: { baseMs: 1, maxMs: 1 },
      tasks: { t: async () => "never", strict },
    });
    w.use(async (ctx, next) => {
      try {
        if (ctx.job.task === "t") throw new Error(`refused attempt ${ctx.job.attempt}`);
        return await next();
      } catch (error) {
        seen.push(`${ctx.job.task}: ${(error as Error).name}`);
        throw error;
      }
    });
    const retried = await db.queue.enqueue("t", {}, { queue: "mw-throw", maxAttempts: 2 });
    const bad = await db.queue.enqueue("strict", { n: "not a number" }, { queue: "mw-throw", maxAttempts: 5 });
    const failed = Promise.all([retried, bad].map((j) => w.waitFor("job:failed", (e) => e.job.id === j.id, deadline())));
    await w.start();
    await failed;
    const r = (await db.queue.getJob(retried.id))!;
    expect(r).toMatchObject({ status: "failed", attempts: 2 });
    expect(r.errors.map((e) => e.message)).toEqual(["refused attempt 1", "refused attempt 2"]);
    // the schema check runs inside the chain: middleware sees the PermanentError, and it fails at once
    expect((await db.queue.getJob(bad.id))!).toMatchObject({ status: "failed", attempts: 1 });
    expect(seen).toContain("strict: PermanentError");
  });

  it("refuses what is not a function", () => {
    const w = db.worker({ queues: ["mw-bad"], tasks: { t: async () => {} } });
    expect(() => w.use("nope" as never)).toThrow(PgPulseError);
    expect(() => db.worker({ queues: ["mw-bad"], tasks: { t: async () => {} }, middleware: [42 as never] })).toThrow(
      expect.objectContaining({ code: "INVALID_INPUT" }),
    );
  });
});

describe("queue middleware", () => {
  it("wraps every kind of enqueue in order, may add meta, and the run sees it", async () => {
    const calls: string[] = [];
    const queue = createQueue({
      connection: DATABASE_URL,
      schema,
      middleware: [
        async (call, next) => {
          calls.push(`${call.op}:${call.specs.length}`);
          for (const spec of [...call.specs, ...Object.values(call.callbacks ?? {})]) spec.meta = { ...spec.meta, request: "r-1" };
          const jobs = await next();
          calls.push(`wrote ${jobs.length}`);
        },
      ],
    });
    try {
      const mine = { task: "t", queue: "mw-q", payload: { a: 1 } };
      const one = await queue.enqueue("t", { a: 1 }, { queue: "mw-q", meta: { tenant: "acme" } });
      await queue.enqueueMany([mine, mine]);
      await queue.enqueueFlow([{ name: "a", task: "t", queue: "mw-q" }, { name: "b", task: "t", queue: "mw-q", parents: ["a"] }]);
      await queue.enqueueBatch([mine], { callbacks: { complete: { task: "t", queue: "mw-q" } } });
      expect(calls).toEqual(["enqueue:1", "wrote 1", "enqueueMany:2", "wrote 2", "enqueueFlow:2", "wrote 2", "enqueueBatch:1", "wrote 2"]);
      // the caller's object is not changed
      expect(mine).toEqual({ task: "t", queue: "mw-q", payload: { a: 1 } });
      expect(one.meta).toEqual({ tenant: "acme", request: "r-1" });
      expect((await queue.getJob(one.id))!.meta).toEqual({ tenant: "acme", request: "r-1" });
      const metas = await sql.unsafe(`select meta from ${s}.jobs where queue = 'mw-q'`);
      expect(metas.every((r) => (r.meta as Record<string, string>).request === "r-1")).toBe(true);

      const seen: unknown[] = [];
      const w = db.worker({ queues: ["mw-q"], tasks: { t: async (_p, ctx) => void seen.push(ctx.job.meta) } });
      const done = w.waitFor("job:completed", (e) => e.job.id === one.id, deadline());
      await w.start();
      await done;
      expect(seen).toContainEqual({ tenant: "acme", request: "r-1" });
    } finally {
      await queue.close();
    }
  });

  it("a throw refuses the call and writes nothing; so does a middleware that never calls next()", async () => {
    const refusing = createQueue({ connection: DATABASE_URL, schema }).use(async (call: EnqueueCall) => {
      if (call.specs.some((spec) => spec.queue === "mw-refused")) throw new PermanentError("not this queue");
    });
    try {
      await expect(refusing.enqueue("t", {}, { queue: "mw-refused" })).rejects.toThrow("not this queue");
      await expect(refusing.enqueueMany([{ task: "t", queue: "mw-refused" }])).rejects.toThrow("not this queue");
      await expect(refusing.enqueue("t", {}, { queue: "mw-skipped" })).rejects.toMatchObject({ code: "INVALID_STATE" });
      expect(await count("mw-refused")).toBe(0);
      expect(await count("mw-skipped")).toBe(0);
    } finally {
      await refusing.close();
    }
  });

  it("meta is checked like every option", async () => {
    await expect(db.queue.enqueue("t", {}, { meta: { n: 1 as never } })).rejects.toMatchObject({ code: "INVALID_INPUT" });
    await expect(db.queue.enqueue("t", {}, { meta: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, "v"])) })).rejects.toMatchObject({
      code: "INVALID_INPUT",
    });
    await expect(db.queue.enqueue("t", {}, { meta: { big: "x".repeat(5000) } })).rejects.toMatchObject({ code: "INVALID_INPUT" });
    expect(() => createQueue({ connection: DATABASE_URL, schema, middleware: ["x" as never] })).toThrow(expect.objectContaining({ code: "INVALID_INPUT" }));
  });

  it("keeps meta through keyed enqueues and limited queues' claims", async () => {
    await db.queue.configureQueue("mw-limited", { concurrency: 2 });
    const keyed = await db.queue.enqueue("t", {}, { queue: "mw-limited", key: "k-meta", meta: { trace: "abc" } });
    expect((await db.queue.getJob(keyed.id))!.meta).toEqual({ trace: "abc" });
    const seen: unknown[] = [];
    const w = db.worker({ queues: ["mw-limited"], tasks: { t: async (_p, ctx) => void seen.push(ctx.job.meta) } });
    const done = w.waitFor("job:completed", (e) => e.job.id === keyed.id, deadline());
    await w.start();
    await done;
    expect(seen).toEqual([{ trace: "abc" }]);
  });
});
