import postgres from "postgres";
import * as v from "valibot";
import { describe, expect, it } from "vitest";
import { createQueue, createWorker, defineTask, type EnqueuedJob, migrate, PgPulseError } from "../src/index.ts";
import { DATABASE_URL, jobsReadsDuring, testDb, until } from "./support/db.ts";

const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;

async function jobCount(): Promise<number> {
  const [row] = await sql.unsafe(`select count(*)::int as n from "${schema}".jobs`);
  return row!.n;
}

/**
 * Collects job_enqueued notifications for this schema between start and
 * collect(). collect() sends a sentinel and waits for it: notifications
 * arrive in commit order, so everything sent before it has arrived by then.
 */
async function notifications() {
  const listener = postgres(DATABASE_URL, { onnotice: () => {} });
  const got: { queues: string[] }[] = [];
  let sentinel: (() => void) | undefined;
  await listener.listen("job_enqueued", (text) => {
    if (text === `sentinel:${schema}`) return sentinel?.();
    const msg = JSON.parse(text);
    if (msg.schema === schema) got.push(msg);
  });
  return {
    async collect() {
      const seen = new Promise<void>((r) => (sentinel = r));
      await sql`select pg_notify('job_enqueued', ${`sentinel:${schema}`})`;
      await seen;
      await listener.end();
      return got;
    },
  };
}

/**
 * Enqueues specs while a trigger refuses to insert jobs of task "boom": the call
 * throws the trigger's error, no notification is sent and no job is written.
 */
async function expectRefusedInsertChangesNothing(specs: { task: string; queue: string; key?: string }[]) {
  await sql.unsafe(`
    create function "${schema}".refuse_boom() returns trigger language plpgsql as $$
    begin raise exception 'boom refused' using errcode = '23514'; end $$;
    create trigger refuse_boom before insert on "${schema}".jobs
      for each row when (new.task = 'boom') execute function "${schema}".refuse_boom()`);
  try {
    const before = await jobCount();
    const n = await notifications();
    await expect(queue.enqueueMany(specs)).rejects.toThrow(/boom refused/);
    expect(await n.collect()).toEqual([]);
    expect(await jobCount()).toBe(before);
  } finally {
    await sql.unsafe(`drop trigger refuse_boom on "${schema}".jobs; drop function "${schema}".refuse_boom()`);
  }
}

/**
 * On a fresh schema without `procedure` (as an older version has it), runs
 * `enqueueTwo` with a queue of this version, which must make two jobs; then
 * each job's notification must have come from the transaction that inserted it.
 */
async function onOlderSchema(name: string, procedures: string[], enqueueTwo: (q: ReturnType<typeof createQueue>) => Promise<void>) {
  const old = `${schema}_${name}`;
  await migrate({ connection: DATABASE_URL, schema: old });
  for (const procedure of procedures) await sql.unsafe(`drop procedure "${old}".${procedure}`);
  const q = createQueue({ connection: DATABASE_URL, schema: old });
  const listener = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
  try {
    const heard: { t: number }[] = [];
    await listener.listen("job_enqueued", (text) => {
      const msg = JSON.parse(text);
      if (msg.schema === old) heard.push(msg);
    });
    await enqueueTwo(q);
    await until(() => heard.length === 2);
    // (one transaction per enqueue: a flow's jobs share theirs)
    const rows = await sql.unsafe(`select xmin::text as xmin from "${old}".jobs group by xmin order by min(id)`);
    expect(heard.map((m) => String(m.t % 2 ** 32))).toEqual(rows.map((r) => r.xmin));
  } finally {
    await listener.end();
    await q.close();
    await sql.unsafe(`drop schema "${old}" cascade`);
  }
}

describe("enqueue", () => {
  it("stores a job with defaults and returns it", async () => {
    const job = await queue.enqueue("send-email", { to: "a@b.c" });
    expect(job).toMatchObject({
      task: "send-email",
      queue: "default",
      payload: { to: "a@b.c" },
      status: "queued",
      priority: 0,
      attempts: 0,
      maxAttempts: 10,
      timeoutMs: null,
      key: null,
      progress: 0,
      result: null,
      errors: [],
      deduplicated: false,
    });
    expect(job.id).toMatch(/^[0-9]+$/);
    expect(await queue.getJob(job.id)).toMatchObject({ id: job.id, status: "queued" });
  });

  it("stores every option", async () => {
    const runAt = new Date(Date.now() + 60_000);
    const job = await queue.enqueue("t", { a: [1, null, "x"] }, {
      queue: "high", priority: 5, runAt, maxAttempts: 3, timeoutMs: 1500, key: "opt-1",
    });
    expect(job).toMatchObject({ queue: "high", priority: 5, maxAttempts: 3, timeoutMs: 1500, key: "opt-1" });
    expect(job.runAt.getTime()).toBe(runAt.getTime());
    expect(job.payload).toEqual({ a: [1, null, "x"] });
  });

  it("delayMs counts from database time", async () => {
    const [{ now }] = (await sql`select now() as now`) as unknown as [{ now: Date }];
    const job = await queue.enqueue("t", {}, { delayMs: 5000 });
    expect(job.runAt.getTime() - job.createdAt.getTime()).toBe(5000);
    expect(job.createdAt.getTime()).toBeGreaterThanOrEqual(now.getTime());
  });

  it("returns the live job for a duplicate key, and allows the key again once it ended", async () => {
    const first = await queue.enqueue("t", { n: 1 }, { key: "dup" });
    const again = await queue.enqueue("t", { n: 2 }, { key: "dup" });
    expect(again.id).toBe(first.id);
    expect(again.deduplicated).toBe(true);
    expect(again.payload).toEqual({ n: 1 });
    await queue.cancel(first.id);
    const third = await queue.enqueue("t", { n: 3 }, { key: "dup" });
    expect(third.id).not.toBe(first.id);
    expect(third.deduplicated).toBe(false);
  });

  it("never duplicates a key under concurrent enqueues", async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => queue.enqueue("t", { i }, { key: "race" })),
    );
    expect(new Set(results.map((j) => j.id)).size).toBe(1);
    expect(results.filter((j) => !j.deduplicated)).toHaveLength(1);
    const [row] = await sql.unsafe(`select count(*)::int as n from "${schema}".jobs where key = 'race'`);
    expect(row!.n).toBe(1);
  });

  it("enqueueMany inserts in order in one statement, deduplicating within the batch", async () => {
    const jobs = await queue.enqueueMany([
      { task: "a", payload: { i: 0 } },
      { task: "b", payload: { i: 1 }, key: "batch-k", queue: "q2" },
      { task: "c", payload: { i: 2 }, key: "batch-k" },
      { task: "d", priority: 3 },
    ]);
    expect(jobs.map((j) => j.task)).toEqual(["a", "b", "b", "d"]);
    expect(jobs[2]!.id).toBe(jobs[1]!.id);
    expect(jobs.map((j) => j.deduplicated)).toEqual([false, false, true, false]);
    expect(jobs[3]!.payload).toEqual({});
    expect(await queue.enqueueMany([])).toEqual([]);
  });

  it("notifies once per statement, naming only queues with jobs runnable now", async () => {
    const n = await notifications();
    await queue.enqueueMany([
      ...Array.from({ length: 50 }, (_, i) => ({ task: "t", payload: { i }, queue: "n1" })),
      ...Array.from({ length: 50 }, (_, i) => ({ task: "t", payload: { i }, queue: "n2" })),
      { task: "t", queue: "later", delayMs: 60_000 },
    ]);
    await queue.enqueue("t", {}, { queue: "later", delayMs: 60_000 });
    const got = await n.collect();
    expect(got).toHaveLength(1);
    expect(got[0]!.queues.sort()).toEqual(["n1", "n2"]);
  });

  describe("the notification of a plain enqueue", () => {
    // a transaction's id as xmin shows it: the low 32 bits of txid_current()
    const xidOf = (t: number) => String(t % 2 ** 32);

    it("comes from a transaction of its own, after the insert's commit, on the queue's pool", async () => {
      const n = await notifications();
      const job = await queue.enqueue("t", {}, { queue: "own-tx" });
      const [got] = await n.collect();
      expect(got).toMatchObject({ schema, queues: ["own-tx"], n: 1 });
      const [row] = await sql.unsafe(`select xmin::text as xmin from "${schema}".jobs where id = $1`, [job.id]);
      expect(xidOf((got as unknown as { t: number }).t)).not.toBe(row!.xmin);
    });

    it("comes with the caller's transaction, and not at all when it rolls back", async () => {
      const n = await notifications();
      const job = await sql.begin((tx) => queue.enqueue("t", {}, { queue: "in-tx", tx }));
      await expect(
        sql.begin(async (tx) => {
          await queue.enqueue("t", {}, { queue: "rolled-back", tx });
          throw new Error("rollback");
        }),
      ).rejects.toThrow("rollback");
      const got = await n.collect();
      expect(got).toHaveLength(1);
      expect(got[0]).toMatchObject({ queues: ["in-tx"], n: 1 });
      const [row] = await sql.unsafe(`select xmin::text as xmin from "${schema}".jobs where id = $1`, [job.id]);
      expect(xidOf((got[0] as unknown as { t: number }).t)).toBe(row!.xmin);
    });

    it("writes the same rows on the pool (enqueue_plain()) as in a transaction (the producer's statement)", async () => {
      const specs = [
        { task: "same", payload: { a: [1, "x"] } },
        { task: "same", queue: "same-q", priority: 5, delayMs: 1500, maxAttempts: 3, timeoutMs: 900, group: "g1", meta: { k: "v" } },
        { task: "same", runAt: new Date("2031-01-02T03:04:05.678Z") },
      ];
      const pooled = await queue.enqueueMany(specs);
      const inTx = await sql.begin((tx) => queue.enqueueMany(specs, { tx }));
      const rows = (ids: string[]) =>
        sql.unsafe(
          `select queue, task, payload, priority, max_attempts, timeout_ms, group_key, meta, status, attempts, key,
                  case when run_at > created_at + interval '1 year' then run_at end as given_run_at,
                  case when run_at <= created_at + interval '1 year' then extract(epoch from run_at - created_at) * 1000 end as delay_ms
             from "${schema}".jobs where id = any($1::bigint[]) order by id`,
          [ids],
        );
      expect(await rows(pooled.map((j) => j.id))).toEqual(await rows(inTx.map((j) => j.id)));
      expect((await rows(pooled.map((j) => j.id))).map((r) => r.delay_ms && Number(r.delay_ms))).toEqual([0, 1500, null]);
      expect(pooled.map((j) => j.runAt.getTime() - j.createdAt.getTime()).slice(0, 2)).toEqual([0, 1500]);
    });

    it("reads the same through the caller's postgres.js with its own types and column transform", async () => {
      const own = postgres(DATABASE_URL, { max: 2, onnotice: () => {}, types: { bigint: postgres.BigInt }, transform: postgres.camel });
      const q = createQueue({ connection: own, schema });
      try {
        const n = await notifications();
        const [a, b] = await q.enqueueMany([{ task: "t", queue: "own-pg" }, { task: "t", queue: "own-pg", delayMs: 60_000 }]);
        expect(a).toMatchObject({ queue: "own-pg", status: "queued" });
        expect(a!.id).toMatch(/^[0-9]+$/);
        expect(BigInt(b!.id)).toBe(BigInt(a!.id) + 1n);
        expect(b!.runAt.getTime() - a!.createdAt.getTime()).toBe(60_000);
        expect(await n.collect()).toEqual([expect.objectContaining({ queues: ["own-pg"], n: 1 })]);
      } finally {
        await q.close();
        await own.end();
      }
    });

    it("reads its rows unchanged through a caller's postgres.js that transforms what it reads", async () => {
      const own = postgres(DATABASE_URL, { max: 2, onnotice: () => {}, transform: postgres.camel });
      const q = createQueue({ connection: own, schema });
      const seen: unknown[] = [];
      const worker = createWorker({
        connection: own, schema, queues: ["own-pg-reads"], logger: "warn", pollIntervalMs: 50,
        tasks: { "snake-task": async (payload) => void seen.push(payload) },
      });
      try {
        await worker.start();
        const job = await q.enqueue("snake-task", { snake_key: { inner_key: 1 } }, { queue: "own-pg-reads", key: "own-pg-reads-1" });
        expect(job).toMatchObject({ payload: { snake_key: { inner_key: 1 } }, maxAttempts: 10, queue: "own-pg-reads" });
        expect(job.createdAt).toBeInstanceOf(Date);
        await until(async () => (await q.getJob(job.id))?.status === "completed");
        expect(seen).toEqual([{ snake_key: { inner_key: 1 } }]);
        expect(await q.getJob(job.id)).toMatchObject({ payload: { snake_key: { inner_key: 1 } }, runAt: expect.any(Date), attempts: 1 });
      } finally {
        await worker.stop();
        await q.close();
      }
      // the caller's own instance stays open, and keeps its transform
      const [row] = await own`select 1 as some_column`;
      expect(row).toEqual({ someColumn: 1 });
      await own.end();
    });

    it("names many queues in as many notifications as their names need", async () => {
      const names = Array.from({ length: 400 }, (_, i) => `many-queues-${String(i).padStart(4, "0")}-${"x".repeat(14)}`);
      const n = await notifications();
      const jobs = await queue.enqueueMany(names.map((name) => ({ task: "t", queue: name })));
      expect(jobs).toHaveLength(400);
      const got = await n.collect();
      // 400 names of 30 characters do not fit in one notification's 8,000 bytes
      expect(got.length).toBeGreaterThan(1);
      expect(got.flatMap((m) => m.queues).sort()).toEqual(names);
    });

    it("fits queue names that JSON escapes in notifications of at most 8,000 bytes", async () => {
      // 5,120 bytes as text, about 10,000 as JSON
      const names = Array.from({ length: 40 }, (_, i) => `${'"'.repeat(126)}${String(i).padStart(2, "0")}`);
      const n = await notifications();
      await queue.enqueueMany(names.map((name) => ({ task: "t", queue: name })));
      const got = await n.collect();
      expect(got.length).toBeGreaterThan(1);
      expect(got.flatMap((m) => m.queues).sort()).toEqual([...names].sort());
    });

    it("on a postgres.js transaction given as the connection, is part of that transaction", async () => {
      const before = await jobCount();
      const n = await notifications();
      await expect(
        sql.begin(async (tx) => {
          const inTx = createQueue({ connection: tx as never, schema });
          await inTx.enqueue("t", {}, { queue: "tx-connection" });
          expect(await jobCount()).toBe(before);
          throw new Error("rollback");
        }),
      ).rejects.toThrow("rollback");
      expect(await jobCount()).toBe(before);
      expect(await n.collect()).toEqual([]);
    });

    it("is sent in the insert's transaction on a schema without enqueue_plain() (version 8)", () =>
      onOlderSchema("v8", ["enqueue_plain(jsonb, text, timestamptz)"], async (q) => {
        const [a] = await q.enqueueMany([{ task: "t" }]);
        const b = await q.enqueue("t", {});
        expect(BigInt(b.id)).toBe(BigInt(a!.id) + 1n);
      }));

    it("is not sent when the insert fails, and the insert changes nothing", () =>
      expectRefusedInsertChangesNothing([{ task: "fine", queue: "boom-q" }, { task: "boom", queue: "boom-q" }]));
  });

  it("a keyed enqueue finds its jobs without reading the table, after the table grew past what it held at the connection's first calls", async () => {
    // A connection keeps the plans of a function's statements. Made while the table held a few
    // rows, enqueue_many()'s read of the jobs it returns was kept as a read of the whole table,
    // and every keyed enqueue got slower as jobs piled up (until an analyze made it plan again).
    const fresh = `${schema}_keyed_plan`;
    const f = `"${fresh}"`;
    await migrate({ connection: DATABASE_URL, schema: fresh });
    const own = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
    try {
      const specs = (i: number) =>
        JSON.stringify([
          { task: "t", key: `new-${i}` },
          { task: "t", key: "held" },
          { task: "t", key: "throttled", throttle_ms: 60_000 },
          { task: "t", key: "debounced", debounce_ms: 60_000 },
        ]);
      const enqueueSome = `select count(*)::int as n from ${f}.enqueue_many($1::text::jsonb)`;
      for (let i = 0; i < 12; i++) expect((await own.unsafe(enqueueSome, [specs(i)]))[0]!.n).toBe(4);
      await own.unsafe(`insert into ${f}.jobs (task, status, finished_at) select 't', 'completed', now() from generate_series(1, 20000)`);
      const { seqScans } = await jobsReadsDuring(own, f, async (tx) => {
        expect((await tx.unsafe(enqueueSome, [specs(12)]))[0]!.n).toBe(4);
      });
      expect(seqScans).toBe(0);
      expect((await sql.unsafe(`select count(*)::int as n from ${f}.jobs where key is not null`))[0]!.n).toBe(16);
    } finally {
      await own.end();
      await sql.unsafe(`drop schema ${f} cascade`);
    }
  });

  describe("the notification of a flow or a batch", () => {
    const xidOf = (t: number) => String(t % 2 ** 32);
    const xminOf = async (id: string) =>
      (await sql.unsafe(`select xmin::text as xmin from "${schema}".jobs where id = $1`, [id]))[0]!.xmin as string;
    const flow = (q: string) => [{ name: "a", task: "t", queue: q }, { name: "b", task: "t", queue: q, parents: ["a"] }, { name: "c", task: "t", queue: `${q}-2` }];

    it("comes from a transaction of its own, after the insert's commit, on the queue's pool, naming the jobs runnable now", async () => {
      const n = await notifications();
      const [a, b] = await queue.enqueueFlow(flow("flow-own-tx"));
      const batch = await queue.enqueueBatch([{ task: "t", queue: "batch-own-tx" }], { callbacks: { complete: { task: "t", queue: "batch-own-tx" } } });
      const got = await n.collect();
      expect(got).toEqual([
        expect.objectContaining({ schema, queues: ["flow-own-tx", "flow-own-tx-2"], n: 2 }),
        expect.objectContaining({ schema, queues: ["batch-own-tx"], n: 1 }),
      ]);
      expect(b!.status).toBe("pending");
      expect(xidOf((got[0] as unknown as { t: number }).t)).not.toBe(await xminOf(a!.id));
      expect(xidOf((got[1] as unknown as { t: number }).t)).not.toBe(await xminOf(batch.jobs[0]!.id));
    });

    it("comes with the caller's transaction, and not at all when it rolls back", async () => {
      const n = await notifications();
      const [a] = await sql.begin((tx) => queue.enqueueFlow(flow("flow-in-tx"), { tx }));
      await expect(
        sql.begin(async (tx) => {
          await queue.enqueueFlow(flow("flow-rolled-back"), { tx });
          throw new Error("rollback");
        }),
      ).rejects.toThrow("rollback");
      const got = await n.collect();
      expect(got).toEqual([expect.objectContaining({ queues: ["flow-in-tx", "flow-in-tx-2"] })]);
      expect(xidOf((got[0] as unknown as { t: number }).t)).toBe(await xminOf(a!.id));
    });

    it("names many queues in as many notifications as their names need, in the caller's transaction too", async () => {
      const names = (w: string) => Array.from({ length: 400 }, (_, i) => `flow-${w}-${String(i).padStart(4, "0")}-${"x".repeat(14)}`);
      const specs = (w: string) => names(w).map((q, i) => ({ name: `j${i}`, task: "t", queue: q }));
      for (const w of ["pool", "tx"]) {
        const n = await notifications();
        const jobs = w === "tx" ? await sql.begin((tx) => queue.enqueueFlow(specs(w), { tx })) : await queue.enqueueFlow(specs(w));
        expect(jobs).toHaveLength(400);
        const got = await n.collect();
        // 400 names of 30 characters do not fit in one notification's 8,000 bytes
        expect(got.length, w).toBeGreaterThan(1);
        expect(got.flatMap((m) => m.queues).sort(), w).toEqual(names(w));
        expect(got.every((m) => (m as unknown as { n: number }).n === 400), w).toBe(true);
      }
    });

    it("leaves nothing set on the connection when the flow fails", async () => {
      const own = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
      try {
        const q = `"${schema}"`;
        await expect(own.unsafe(`call ${q}.enqueue_flow_later($1::text::jsonb, null, null)`, [JSON.stringify([{ task: "t", parents: [[5, "fail"]] }])]))
          .rejects.toMatchObject({ code: "22023" });
        const [row] = await own.unsafe(`select coalesce(current_setting('pgpulse.notify_later', true), '') as later, coalesce(current_setting('pgpulse.ready', true), '') as ready`);
        expect(row).toEqual({ later: "", ready: "" });
        // the next flow on that connection, in a transaction, notifies with it
        const n = await notifications();
        const [first] = await own.begin((tx) => queue.enqueueFlow([{ name: "a", task: "t", queue: "flow-after-failure" }], { tx }));
        const got = await n.collect();
        expect(got).toEqual([expect.objectContaining({ queues: ["flow-after-failure"] })]);
        expect(xidOf((got[0] as unknown as { t: number }).t)).toBe(await xminOf(first!.id));
      } finally {
        await own.end();
      }
    });

    it("is sent in the insert's transaction on a schema without enqueue_flow_later() (version 10)", () =>
      onOlderSchema("v10f", ["enqueue_flow_later(jsonb, jsonb, text)"], async (q) => {
        const jobs = await q.enqueueFlow([{ name: "a", task: "t" }, { name: "b", task: "t", parents: ["a"] }]);
        expect(jobs.map((j) => j.status)).toEqual(["queued", "pending"]);
        await q.enqueueBatch([{ task: "t" }]);
      }));
  });

  describe("the notification of a keyed enqueue", () => {
    const xidOf = (t: number) => String(t % 2 ** 32);
    const xminOf = async (id: string) =>
      (await sql.unsafe(`select xmin::text as xmin from "${schema}".jobs where id = $1`, [id]))[0]!.xmin as string;

    it("comes from a transaction of its own, after the insert's commit, on the queue's pool", async () => {
      const n = await notifications();
      const job = await queue.enqueue("t", {}, { queue: "keyed-own-tx", key: "keyed-own-tx-1" });
      const [got] = await n.collect();
      expect(got).toMatchObject({ schema, queues: ["keyed-own-tx"], n: 1 });
      expect(xidOf((got as unknown as { t: number }).t)).not.toBe(await xminOf(job.id));
    });

    it("comes with the caller's transaction, and not at all when it rolls back", async () => {
      const n = await notifications();
      const job = await sql.begin((tx) => queue.enqueue("t", {}, { queue: "keyed-in-tx", key: "keyed-in-tx-1", tx }));
      await expect(
        sql.begin(async (tx) => {
          await queue.enqueue("t", {}, { queue: "keyed-rolled-back", key: "keyed-rb-1", tx });
          throw new Error("rollback");
        }),
      ).rejects.toThrow("rollback");
      const got = await n.collect();
      expect(got).toEqual([expect.objectContaining({ queues: ["keyed-in-tx"], n: 1 })]);
      expect(xidOf((got[0] as unknown as { t: number }).t)).toBe(await xminOf(job.id));
    });

    it("answers on the pool (enqueue_keyed()) as in a transaction (enqueue_many()), new and deduplicated", async () => {
      const specs = (k: string) => [
        { task: "kt", key: `${k}-a`, payload: { a: [1, "x"] }, priority: 3, meta: { m: "1" } },
        { task: "kt", key: `${k}-b`, queue: "keyed-same", delayMs: 1500, maxAttempts: 3, timeoutMs: 900 },
        { task: "kt", key: `${k}-a`, payload: { second: true } },
      ];
      const strip = (j: EnqueuedJob) => {
        const { id, key, createdAt, runAt, ...rest } = j;
        return { ...rest, id: typeof id, key: key!.slice(-2), createdAt: createdAt instanceof Date, runAt: runAt instanceof Date };
      };
      const pooled = await queue.enqueueMany(specs("pool"));
      const inTx = await sql.begin((tx) => queue.enqueueMany(specs("tx"), { tx }));
      expect(pooled.map(strip)).toEqual(inTx.map(strip));
      expect(pooled.map((j) => j.deduplicated)).toEqual([false, false, true]);
      expect(pooled[2]!.id).toBe(pooled[0]!.id);
      expect(pooled[1]!.runAt.getTime() - pooled[1]!.createdAt.getTime()).toBe(1500);
      // a new job is answered from its spec and the database's id and clock: it is the row as stored
      for (const j of [...pooled, ...inTx]) expect({ ...j, deduplicated: undefined }, j.key!).toEqual(await queue.getJob(j.id));
      // every option, on specs of keys of their own (answered in the short form)
      const every = (k: string) => [
        { task: "kt", key: `${k}-1`, payload: { big: 2 ** 53 + 2, s: "\u2028" }, priority: -7, meta: { trace: "t" }, group: "g", maxAttempts: 4, timeoutMs: 1234 },
        { task: "kt", key: `${k}-2`, runAt: new Date("2031-02-03T04:05:06.789Z"), queue: "keyed-every" },
        { task: "kt", key: `${k}-3`, throttleMs: 60_000, delayMs: 250 },
        { task: "kt", key: `${k}-4`, debounceMs: 400, payload: [1, { a: null }] },
      ];
      const fresh = [...(await queue.enqueueMany(every("every-pool"))), ...(await sql.begin((tx) => queue.enqueueMany(every("every-tx"), { tx })))];
      expect(fresh.map((j) => j.deduplicated)).toEqual(Array(8).fill(false));
      for (const j of fresh) expect({ ...j, deduplicated: undefined }, j.key!).toEqual(await queue.getJob(j.id));
      // again: every spec finds its live job, with the job as it stands
      const again = await queue.enqueueMany(specs("pool"));
      expect(again.map((j) => [j.id, j.deduplicated])).toEqual(pooled.map((j) => [j.id, true]));
      expect(again[0]).toEqual({ ...pooled[0], deduplicated: true });
    });

    it("refuses to answer by position when a job a spec matched by its key was deleted during the call", async () => {
      const gone = await queue.enqueue("t", {}, { key: "thr-gone", throttleMs: 60_000 });
      await sql.unsafe(`update "${schema}".jobs set status = 'completed', finished_at = now() where id = $1`, [gone.id]);
      // the second spec's insert deletes the finished job the first (a throttle) matched
      await sql.unsafe(`
        create function "${schema}".delete_gone() returns trigger language plpgsql as $$
        begin delete from "${schema}".jobs where key = 'thr-gone'; return new; end $$;
        create trigger delete_gone before insert on "${schema}".jobs
          for each row when (new.task = 'deleter') execute function "${schema}".delete_gone()`);
      try {
        await expect(queue.enqueueMany([
          { task: "t", key: "thr-gone", throttleMs: 60_000 },
          { task: "deleter", key: "thr-deleter" },
        ])).rejects.toMatchObject({ code: "INVALID_STATE", details: { specs: 2, answered: 1 } });
      } finally {
        await sql.unsafe(`drop trigger delete_gone on "${schema}".jobs; drop function "${schema}".delete_gone()`);
      }
      // the call's job stands; enqueueing the same specs again answers for both
      const again = await queue.enqueueMany([{ task: "t", key: "thr-gone", throttleMs: 60_000 }, { task: "deleter", key: "thr-deleter" }]);
      expect(again.map((j) => [j.task, j.deduplicated])).toEqual([["t", false], ["deleter", true]]);
    });

    it("answers a new job that a later spec of the same call debounced as it stands after the call", async () => {
      for (const tx of [undefined, "tx"] as const) {
        const specs = [
          { task: "kt", key: `deb-call-${tx}`, debounceMs: 1000, payload: { n: 1 } },
          { task: "kt", key: `deb-call-${tx}`, debounceMs: 2000, payload: { n: 2 } },
          { task: "kt", key: `deb-call-other-${tx}`, debounceMs: 1000, payload: { n: 3 } },
        ];
        const made = tx ? await sql.begin((t) => queue.enqueueMany(specs, { tx: t })) : await queue.enqueueMany(specs);
        expect(made.map((j) => [j.payload, j.deduplicated])).toEqual([[{ n: 2 }, false], [{ n: 2 }, true], [{ n: 3 }, false]]);
        expect(made[0]).toEqual({ ...made[1], deduplicated: false });
        expect(made[2]!.runAt.getTime() - made[2]!.createdAt.getTime()).toBe(1000);
        for (const j of made) expect({ ...j, deduplicated: undefined }).toEqual(await queue.getJob(j.id));
      }
    });

    it("answers the same through enqueue_keyed() on a schema without enqueue_keys() (version 10), and notifies after the commit", async () => {
      const old = `${schema}_v10`;
      await migrate({ connection: DATABASE_URL, schema: old });
      await sql.unsafe(`drop procedure "${old}".enqueue_keys(jsonb, text)`);
      const q = createQueue({ connection: DATABASE_URL, schema: old });
      const listener = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
      try {
        const specs = (k: string) => [
          { task: "kt", key: `${k}-a`, payload: { a: 1 }, priority: 2 },
          { task: "kt", key: `${k}-a`, payload: { a: 2 } },
          { task: "kt", key: `${k}-b`, debounceMs: 700 },
        ];
        const strip = (j: EnqueuedJob) => ({ ...j, id: undefined, key: j.key!.slice(-2), createdAt: undefined, runAt: j.runAt.getTime() - j.createdAt.getTime() });
        const older = await q.enqueueMany(specs("v10"));
        const current = await queue.enqueueMany(specs("v11"));
        expect(older.map(strip)).toEqual(current.map(strip));
        expect(older.map((j) => j.deduplicated)).toEqual([false, true, false]);
        // the notification came from a transaction after the insert's
        let heard!: (msg: { t: number }) => void;
        const message = new Promise<{ t: number }>((resolve) => (heard = resolve));
        await listener.listen("job_enqueued", (text) => {
          const msg = JSON.parse(text);
          if (msg.schema === old) heard(msg);
        });
        const late = await q.enqueue("kt", {}, { key: "v10-late" });
        const msg = await message;
        const [row] = await sql.unsafe(`select xmin::text as xmin from "${old}".jobs where id = $1`, [late.id]);
        expect(xidOf(msg.t)).not.toBe(row!.xmin);
      } finally {
        await listener.end();
        await q.close();
        await sql.unsafe(`drop schema "${old}" cascade`);
      }
    });

    it("reads the same through the caller's postgres.js with its own types and column transform", async () => {
      const own = postgres(DATABASE_URL, { max: 2, onnotice: () => {}, types: { bigint: postgres.BigInt }, transform: postgres.camel });
      const q = createQueue({ connection: own, schema });
      try {
        const a = await q.enqueue("t", { x: 1 }, { queue: "keyed-own-pg", key: "keyed-own-pg-1" });
        const b = await q.enqueue("t", { x: 2 }, { queue: "keyed-own-pg", key: "keyed-own-pg-1" });
        expect(a).toMatchObject({ queue: "keyed-own-pg", status: "queued", key: "keyed-own-pg-1", payload: { x: 1 }, deduplicated: false });
        expect(a.id).toMatch(/^[0-9]+$/);
        expect(a.createdAt).toBeInstanceOf(Date);
        expect(b).toEqual({ ...a, deduplicated: true });
      } finally {
        await q.close();
        await own.end();
      }
    });

    it("notifies once for a debounced or throttled job, after its commit", async () => {
      const n = await notifications();
      const d = await queue.enqueue("t", {}, { queue: "keyed-special", key: "keyed-debounce", debounceMs: 0 });
      const th = await queue.enqueue("t", {}, { queue: "keyed-special", key: "keyed-throttle", throttleMs: 60_000 });
      const again = await queue.enqueue("t", {}, { queue: "keyed-special", key: "keyed-throttle", throttleMs: 60_000 });
      expect(again).toMatchObject({ id: th.id, deduplicated: true });
      const got = await n.collect();
      // the throttled repeat made no job: no notification
      expect(got).toEqual([
        expect.objectContaining({ queues: ["keyed-special"], n: 1 }),
        expect.objectContaining({ queues: ["keyed-special"], n: 1 }),
      ]);
      expect(xidOf((got[0] as unknown as { t: number }).t)).not.toBe(await xminOf(d.id));
    });

    it("names many queues in as many notifications as their names need", async () => {
      const names = Array.from({ length: 400 }, (_, i) => `keyed-queues-${String(i).padStart(4, "0")}-${"x".repeat(14)}`);
      const n = await notifications();
      await queue.enqueueMany(names.map((name, i) => ({ task: "t", queue: name, key: `keyed-many-${i}` })));
      const got = await n.collect();
      expect(got.length).toBeGreaterThan(1);
      expect(got.flatMap((m) => m.queues).sort()).toEqual(names);
    });

    it("is not sent when the insert fails, and the insert changes nothing", () =>
      expectRefusedInsertChangesNothing([{ task: "fine", queue: "kboom-q", key: "kboom-1" }, { task: "boom", queue: "kboom-q", key: "kboom-2" }]));

    it("is sent in the insert's transaction on a schema without enqueue_keys() and enqueue_keyed() (version 9)", () =>
      onOlderSchema("v9", ["enqueue_keys(jsonb, text)", "enqueue_keyed(jsonb, text)"], async (q) => {
        const a = await q.enqueue("t", {}, { key: "v9-a" });
        const b = await q.enqueue("t", {}, { key: "v9-a" });
        expect(b).toEqual({ ...a, deduplicated: true });
        await q.enqueue("t", {}, { key: "v9-b" });
      }));
  });

  it("commits and rolls back with the caller's transaction", async () => {
    const before = await jobCount();
    await expect(
      sql.begin(async (tx) => {
        await queue.enqueue("t", { doomed: true }, { tx });
        throw new Error("rollback");
      }),
    ).rejects.toThrow("rollback");
    expect(await jobCount()).toBe(before);

    const job = await sql.begin(async (tx) => {
      const j = await queue.enqueue("t", { kept: true }, { tx });
      await queue.enqueueMany([{ task: "t2" }], { tx });
      return j;
    });
    expect(await jobCount()).toBe(before + 2);
    expect((await queue.getJob(job.id))?.payload).toEqual({ kept: true });
  });

  it("enqueues from plain SQL with the same semantics", async () => {
    const [job] = await sql.unsafe(
      `select * from "${schema}".enqueue('from-sql', '{"x":1}', queue => 'sqlq', key => 'sql-key')`,
    );
    expect(job).toMatchObject({ task: "from-sql", payload: { x: 1 }, queue: "sqlq", status: "queued" });
    const [again] = await sql.unsafe(`select * from "${schema}".enqueue('from-sql', '{"x":2}', key => 'sql-key')`);
    expect(again!.id).toBe(job!.id);
    await expect(sql.unsafe(`select * from "${schema}".enqueue('')`)).rejects.toThrow(/check constraint/);
  });

  describe("rejects bad input with a typed error and writes nothing", () => {
    const cases: [string, () => Promise<unknown>, string, string][] = [
      ["empty task name", () => queue.enqueue("", {}), "INVALID_INPUT", "task"],
      ["non-string task", () => queue.enqueue(42 as never, {}), "INVALID_INPUT", "task"],
      ["unknown option", () => queue.enqueue("t", {}, { queu: "x" } as never), "INVALID_INPUT", "queu"],
      ["negative delay", () => queue.enqueue("t", {}, { delayMs: -1 }), "INVALID_INPUT", "delayMs"],
      ["runAt and delayMs", () => queue.enqueue("t", {}, { delayMs: 1, runAt: new Date() }), "INVALID_INPUT", ""],
      ["invalid runAt", () => queue.enqueue("t", {}, { runAt: "not a date" }), "INVALID_INPUT", "runAt"],
      ["zero maxAttempts", () => queue.enqueue("t", {}, { maxAttempts: 0 }), "INVALID_INPUT", "maxAttempts"],
      ["fractional priority", () => queue.enqueue("t", {}, { priority: 1.5 }), "INVALID_INPUT", "priority"],
      ["empty queue", () => queue.enqueue("t", {}, { queue: "" }), "INVALID_INPUT", "queue"],
      ["empty key", () => queue.enqueue("t", {}, { key: "" }), "INVALID_INPUT", "key"],
      ["function in payload", () => queue.enqueue("t", { f: () => 1 }), "INVALID_PAYLOAD", "payload.f"],
      ["bigint in payload", () => queue.enqueue("t", { n: 1n }), "INVALID_PAYLOAD", "payload.n"],
      ["NaN in payload", () => queue.enqueue("t", { n: [NaN] }), "INVALID_PAYLOAD", "payload.n[0]"],
      ["hole in a sparse array", () => queue.enqueue("t", { a: [1, , 3] }), "INVALID_PAYLOAD", "payload.a[1]"],
      ["Date in payload", () => queue.enqueue("t", { d: new Date() }), "INVALID_PAYLOAD", "payload.d"],
      ["circular payload", () => { const o: Record<string, unknown> = {}; o.self = o; return queue.enqueue("t", o); }, "INVALID_PAYLOAD", "payload.self"],
      ["bad spec in a batch", () => queue.enqueueMany([{ task: "ok" }, { task: "ok", delayMs: -5 }]), "INVALID_INPUT", "[1].delayMs"],
      ["batch that is not an array", () => queue.enqueueMany({} as never), "INVALID_INPUT", ""],
      ["batch options that are not an object", () => queue.enqueueMany([{ task: "t" }], 5 as never), "INVALID_INPUT", "options"],
      ["tx inside a batch spec", () => queue.enqueueMany([{ task: "t", tx: sql } as never]), "INVALID_INPUT", "[0].tx"],
      ["job options beside tx in a batch", () => queue.enqueueMany([{ task: "t" }], { queue: "x" } as never), "INVALID_INPUT", "options"],
      ["NUL in a payload string", () => queue.enqueue("t", { s: "a\u0000b" }), "INVALID_PAYLOAD", "payload.s"],
      ["half a surrogate pair in a payload", () => queue.enqueue("t", { s: "\uD800x" }), "INVALID_PAYLOAD", "payload.s"],
      ["NUL in a payload key", () => queue.enqueue("t", { ["a\u0000"]: 1 }), "INVALID_PAYLOAD", "payload.a\\u0000"],
      ["payload nested too deep", () => { let p: unknown = 1; for (let i = 0; i < 300; i++) p = [p]; return queue.enqueue("t", p); }, "INVALID_PAYLOAD", ""],
      ["NUL in a task name", () => queue.enqueue("t\u0000", {}), "INVALID_INPUT", "task"],
      ["runAt on a day that does not exist", () => queue.enqueue("t", {}, { runAt: "2026-02-30T00:00:00Z" }), "INVALID_INPUT", "runAt"],
      ["runAt past year 9999", () => queue.enqueue("t", {}, { runAt: new Date(Date.UTC(20000, 0, 1)) }), "INVALID_INPUT", "runAt"],
      ["options that are not an object", () => queue.enqueue("t", {}, 5 as never), "INVALID_INPUT", "options"],
      ["tx that is not a handle", () => queue.enqueue("t", {}, { tx: {} as never }), "INVALID_INPUT", "tx"],
    ];
    for (const [name, call, code, path] of cases) {
      it(name, async () => {
        const before = await jobCount();
        const error = await call().then(() => undefined, (e: unknown) => e);
        expect(error).toBeInstanceOf(PgPulseError);
        expect((error as PgPulseError).code).toBe(code);
        if (path) {
          const paths = ((error as PgPulseError).details as unknown as { path: string }[]).map((d) => d.path);
          expect(paths).toContain(path);
        }
        expect(await jobCount()).toBe(before);
      });
    }
  });

  it("enforces the payload size limit", async () => {
    const small = createQueue({ connection: sql, schema, maxPayloadBytes: 100 });
    const before = await jobCount();
    await expect(small.enqueue("t", { s: "x".repeat(200) })).rejects.toMatchObject({ code: "INVALID_PAYLOAD" });
    // exactly at the limit is accepted: {"s":"..."} is 8 bytes of punctuation and key
    await small.enqueue("t", { s: "x".repeat(92) });
    expect(await jobCount()).toBe(before + 1);
    await small.close();
  });

  it("validates typed tasks at enqueue and applies their settings", async () => {
    const sendEmail = defineTask({
      name: "send-email-typed",
      schema: v.object({ to: v.pipe(v.string(), v.email()) }),
      queue: "mail",
      maxAttempts: 4,
      timeoutMs: 2000,
      handler: async ({ to }) => ({ sent: to }),
    });
    const job = await queue.enqueue(sendEmail, { to: "ann@example.com" });
    expect(job).toMatchObject({ task: "send-email-typed", queue: "mail", maxAttempts: 4, timeoutMs: 2000 });
    const before = await jobCount();
    const error = await queue.enqueue(sendEmail, { to: "nope" }).catch((e) => e);
    expect(error).toMatchObject({ code: "INVALID_PAYLOAD" });
    expect(error.details[0].path).toBe("payload.to");
    expect(await jobCount()).toBe(before);
    // @ts-expect-error: the payload type comes from the schema
    await expect(queue.enqueue(sendEmail, { to: 42 })).rejects.toMatchObject({ code: "INVALID_PAYLOAD" });
    // options given at enqueue win over the definition's
    expect(await queue.enqueue(sendEmail, { to: "bob@example.com" }, { queue: "other" })).toMatchObject({ queue: "other" });
  });

  it("checks task definitions' settings when they are defined", () => {
    for (const bad of [{ maxAttempts: 0 }, { priority: 1.5 }, { queue: "" }, { timeoutMs: 2 ** 31 }, { backoff: { baseMs: -1 } }, { name: "" }]) {
      expect(() => defineTask({ name: "x", handler: async () => 1, ...bad }), JSON.stringify(bad)).toThrow(
        expect.objectContaining({ code: "INVALID_INPUT" }),
      );
    }
  });

  it("getJob returns null for a missing job and rejects a malformed id", async () => {
    expect(await queue.getJob("999999999")).toBeNull();
    await expect(queue.getJob("abc")).rejects.toMatchObject({ code: "INVALID_INPUT" });
  });

  it("cancel: queued jobs at once; finished jobs refuse; missing jobs are NOT_FOUND", async () => {
    const job = await queue.enqueue("t", {});
    const cancelled = await queue.cancel(job.id);
    expect(cancelled).toMatchObject({ status: "cancelled" });
    expect(cancelled.finishedAt).toBeInstanceOf(Date);
    await expect(queue.cancel(job.id)).rejects.toMatchObject({ code: "INVALID_TRANSITION", details: { status: "cancelled" } });
    await expect(queue.cancel("987654321")).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  it("retry: failed and cancelled jobs run again; other states refuse; a taken key refuses", async () => {
    const job = await queue.enqueue("t", {}, { key: "retry-k", maxAttempts: 1 });
    await expect(queue.retry(job.id)).rejects.toMatchObject({ code: "INVALID_TRANSITION", details: { status: "queued" } });
    await sql.unsafe(`update "${schema}".jobs set status = 'failed', attempts = 1, finished_at = now(),
      errors = '[{"attempt":1,"message":"boom"}]' where id = $1`, [job.id]);
    const again = await queue.retry(job.id);
    expect(again).toMatchObject({ status: "queued", attempts: 1, maxAttempts: 2, finishedAt: null, errors: [{ message: "boom" }] });
    await queue.cancel(job.id);
    const other = await queue.enqueue("t", {}, { key: "retry-k" });
    await expect(queue.retry(job.id)).rejects.toMatchObject({ code: "INVALID_TRANSITION", details: { reason: "key" } });
    await queue.cancel(other.id);
    expect((await queue.retry(job.id)).status).toBe("queued");
    await expect(queue.retry("987654321")).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  it("listJobs pages newest first with filters", async () => {
    const made = await queue.enqueueMany(Array.from({ length: 7 }, (_, i) => ({ task: i % 2 ? "odd" : "even", queue: "list-q" })));
    const page1 = await queue.listJobs({ queue: "list-q", limit: 3 });
    expect(page1.jobs.map((j) => j.id)).toEqual(made.slice(-3).reverse().map((j) => j.id));
    const page2 = await queue.listJobs({ queue: "list-q", limit: 3, cursor: page1.nextCursor! });
    const page3 = await queue.listJobs({ queue: "list-q", limit: 3, cursor: page2.nextCursor! });
    expect([...page1.jobs, ...page2.jobs, ...page3.jobs].map((j) => j.id)).toEqual([...made].reverse().map((j) => j.id));
    expect(page3.nextCursor).toBeNull();
    expect((await queue.listJobs({ queue: "list-q", task: "odd" })).jobs).toHaveLength(3);
    expect((await queue.listJobs({ queue: "list-q", status: "completed" })).jobs).toHaveLength(0);
    await expect(queue.listJobs({ status: "done" as never })).rejects.toMatchObject({ code: "INVALID_INPUT" });
    await expect(queue.listJobs({ limit: 501 })).rejects.toMatchObject({ code: "INVALID_INPUT" });
    await expect(queue.listJobs({ cursor: "x" })).rejects.toMatchObject({ code: "INVALID_INPUT" });
  });

  it("listQueues counts jobs by state per queue", async () => {
    await queue.enqueueMany([{ task: "t", queue: "count-q" }, { task: "t", queue: "count-q" }, { task: "t", queue: "count-q", delayMs: 60_000 }]);
    const [summary] = (await queue.listQueues()).filter((s) => s.queue === "count-q");
    expect(summary).toMatchObject({ waiting: 2, scheduled: 1, running: 0, completed: 0, failed: 0, cancelled: 0, finishedLastMinute: 0 });
    expect(summary!.oldestWaitingMs).toBeGreaterThanOrEqual(0);
  });

  it("accepts the caller's postgres.js sql and leaves it open on close", async () => {
    const own = createQueue({ connection: sql, schema });
    await own.enqueue("t", {});
    await own.close();
    await expect(own.enqueue("t", {})).rejects.toMatchObject({ code: "CLOSED" });
    const [row] = await sql`select 1 as one`;
    expect(row!.one).toBe(1);
  });

  it("rejects a bad connection or schema name up front", () => {
    expect(() => createQueue({ connection: "" })).toThrow(PgPulseError);
    for (const bad of [{ pooler: "session" }, { poolSize: 0 }, { poolSize: 1.5 }, { poolSize: "4" }]) {
      expect(() => createQueue({ connection: DATABASE_URL, ...(bad as object) })).toThrow(
        expect.objectContaining({ code: "INVALID_INPUT", details: [expect.objectContaining({ path: Object.keys(bad)[0] })] }),
      );
    }
    expect(() => createQueue({ connection: DATABASE_URL, schema: 'x"; drop table y; --' })).toThrow(/schema/);
  });
});
