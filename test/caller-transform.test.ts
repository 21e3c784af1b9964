// A caller's transaction from a postgres.js instance that transforms what it
// reads (postgres.camel renames columns and the keys inside JSON values;
// postgres.pascal capitalises them too): every call that takes `tx` returns
// what the same call returns on pgpulse's own pool, payloads, results and log
// fields with their keys as they were given.
import postgres from "postgres";
import { describe, expect, it } from "vitest";
import type { SqlHandle } from "../src/index.ts";
import { runJobs } from "../src/testing/index.ts";
import { DATABASE_URL, testDb } from "./support/db.ts";

const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;

const transforms = { camel: postgres.camel, pascal: postgres.pascal };

describe.each(Object.entries(transforms))("a transaction of an instance with transform: postgres.%s", (name, transform) => {
  /** Runs fn in a transaction of a transforming instance, and the same on the pool; both answers. */
  async function both<T>(fn: (tx: SqlHandle | undefined) => Promise<T>): Promise<[T, T]> {
    const own = postgres(DATABASE_URL, { max: 1, onnotice: () => {}, transform });
    try {
      const inTx = await own.begin((tx) => fn(tx));
      return [inTx as T, await fn(undefined)];
    } finally {
      await own.end();
    }
  }
  const opts = (tx: SqlHandle | undefined) => (tx ? { tx } : {});
  const q = `tr-${name}`;
  const payload = { snake_key: { inner_key: 1 }, list: [{ deep_key: true }] };

  it("checks itself: the instance renames what a plain query reads", async () => {
    const own = postgres(DATABASE_URL, { max: 1, onnotice: () => {}, transform });
    try {
      const [row] = await own.unsafe(`select '{"some_key": 1}'::jsonb as some_column`);
      expect(row).not.toEqual({ some_column: { some_key: 1 } });
    } finally {
      await own.end();
    }
  });

  it("enqueues with and without keys, and reads the jobs back as they stand", async () => {
    const [a, b] = await both(async (tx) => {
      const plain = await queue.enqueue("t", payload, { ...opts(tx), queue: q, meta: { trace_id: "x" } });
      const keyed = await queue.enqueue("t", payload, { ...opts(tx), queue: q, key: `${q}-${tx ? "tx" : "pool"}` });
      const again = await queue.enqueue("t", { other: 1 }, { ...opts(tx), queue: q, key: `${q}-${tx ? "tx" : "pool"}` });
      const many = await queue.enqueueMany([{ task: "t", queue: q, payload }, { task: "t", queue: q, payload, delayMs: 60_000 }], opts(tx));
      return { plain, keyed, again, many, got: await queue.getJob(plain.id, opts(tx)) };
    });
    for (const r of [a, b]) {
      expect(r.plain).toMatchObject({ payload, queue: q, status: "queued", meta: { trace_id: "x" } });
      expect(r.plain.createdAt).toBeInstanceOf(Date);
      expect(r.keyed).toMatchObject({ payload, deduplicated: false, maxAttempts: 10 });
      expect(r.keyed.runAt).toBeInstanceOf(Date);
      expect(r.again).toEqual({ ...r.keyed, deduplicated: true });
      expect(r.many.map((j) => j.payload)).toEqual([payload, payload]);
      expect(r.many[1]!.runAt.getTime() - r.many[1]!.createdAt.getTime()).toBe(60_000);
      expect(r.got).toEqual({ ...r.plain, deduplicated: undefined, batchId: null });
    }
    // the same shape both ways (ids and times aside)
    const shape = (j: object) => Object.keys(j).sort();
    expect(shape(a.got!)).toEqual(shape(b.got!));
    expect(shape(a.keyed)).toEqual(shape(b.keyed));
  });

  it("cancels, retries and lists, and names the parent that blocks a retry", async () => {
    const [a, b] = await both(async (tx) => {
      const c = `${q}-c-${tx ? "tx" : "pool"}`;
      const job = await queue.enqueue("t", payload, { ...opts(tx), queue: c, delayMs: 60_000 });
      const cancelled = await queue.cancel(job.id, opts(tx));
      const retried = await queue.retry(job.id, opts(tx));
      const [parent, child] = await queue.enqueueFlow([
        { name: "p", task: "t", queue: c, payload },
        { name: "c", task: "t", queue: c, payload, parents: ["p"] },
      ], opts(tx));
      await queue.cancel(parent!.id, opts(tx));
      const blocked = await queue.retry(child!.id, opts(tx)).catch((e: unknown) => e);
      const listed = await queue.listJobs({ queue: c }, opts(tx));
      return { job, cancelled, retried, parent: parent!, blocked, listed };
    });
    for (const r of [a, b]) {
      expect(r.cancelled).toMatchObject({ id: r.job.id, status: "cancelled", payload, finishedAt: expect.any(Date) });
      expect(r.retried).toMatchObject({ id: r.job.id, status: "queued", payload, finishedAt: null });
      expect(r.blocked).toMatchObject({ code: "INVALID_TRANSITION", details: { reason: "parent", parent: r.parent.id } });
      expect(r.listed.jobs.map((j) => [j.payload, j.createdAt instanceof Date])).toEqual(r.listed.jobs.map(() => [payload, true]));
      expect(r.listed.jobs).toHaveLength(3);
    }
  });

  it("enqueues flows and batches, and reads graphs, batches and log lines", async () => {
    const [a, b] = await both(async (tx) => {
      const batch = await queue.enqueueBatch([{ task: "t", queue: `${q}-b`, payload }], {
        ...opts(tx), callbacks: { complete: { task: "done", queue: `${q}-b`, payload } },
      });
      const item = batch.jobs[0]!;
      const runner = (tx as postgres.TransactionSql | undefined) ?? sql;
      await runner.unsafe(
        `insert into "${schema}".job_logs (job_id, seq, attempt, at, level, message, fields)
         values ($1::bigint, 1, 1, now(), 'info', 'hello', '{"snake_field": {"inner_key": 2}}')`,
        [item.id],
      );
      return {
        batch,
        got: await queue.getBatch(batch.id, opts(tx)),
        graph: await queue.getGraph(item.id, opts(tx)),
        logs: await queue.getJobLogs(item.id, opts(tx)),
        withLogs: await queue.getJob(item.id, { ...opts(tx), logs: true }),
      };
    });
    for (const r of [a, b]) {
      expect(r.batch.id).toMatch(/^[0-9]+$/);
      expect(r.batch.jobs[0]).toMatchObject({ batchId: r.batch.id, payload });
      expect(r.got).toMatchObject({ id: r.batch.id, size: 1, state: "running", counts: { queued: 1, pending: 0 }, createdAt: expect.any(Date) });
      expect(r.got!.callbacks).toEqual({ complete: r.batch.callbacks.complete!.id });
      expect(r.graph).toMatchObject({ truncated: false, nodes: [{ id: r.batch.jobs[0]!.id, status: "queued" }, { status: "pending" }] });
      expect(r.graph!.edges).toEqual([{ parent: r.batch.jobs[0]!.id, child: r.batch.callbacks.complete!.id, mode: expect.any(String), state: "waiting" }]);
      expect(r.logs).toEqual([expect.objectContaining({ seq: 1, message: "hello", fields: { snake_field: { inner_key: 2 } }, at: expect.any(Date) })]);
      expect(r.withLogs).toMatchObject({ payload, batchId: r.batch.id, logs: r.logs });
    }
  });

  it("runJobs of pgpulse/testing runs the jobs of such a transaction, payloads and parents' results as given", async () => {
    const own = postgres(DATABASE_URL, { max: 1, onnotice: () => {}, transform });
    const seen: unknown[] = [];
    try {
      const ran = await own.begin(async (tx) => {
        await queue.enqueueFlow([
          { name: "p", task: "parent", queue: `${q}-run`, payload },
          { name: "c", task: "child", queue: `${q}-run`, payload, parents: ["p"] },
        ], { tx });
        return runJobs(queue, {
          tx,
          tasks: {
            parent: async (p: unknown) => (seen.push(p), { result_key: { inner_key: 2 } }),
            child: async (p: unknown, ctx) => void seen.push(p, (await ctx.parents()).map((x) => x.result)),
          },
        });
      });
      expect(ran).toMatchObject({ completed: 2, failed: 0 });
      expect(seen).toEqual([payload, payload, [{ result_key: { inner_key: 2 } }]]);
    } finally {
      await own.end();
    }
  });
});
