import postgres from "postgres";
import { describe, expect, it } from "vitest";
import { createDb } from "../src/db/db.ts";
import { migrate } from "../src/index.ts";
import { DATABASE_URL, jobsReadsDuring, testDb, untilWaitingOnLock } from "./support/db.ts";
import { startProxy } from "./support/tcp-proxy.ts";

// claim_rows() (sql/000008) as the worker calls it, through the database layer
// (src/db/claim.ts): the same claims as claim_json(), a row per job back.
const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;
const s = `"${schema}"`;
const layer = createDb(sql, { schema });

async function addWorker(id: string) {
  await sql.unsafe(`insert into ${s}.workers (id, queues, tasks, concurrency) values ($1, '{}', '{}', 4)`, [id]);
}

const claim = (queues: string[], workerId: string, limit: number, ahead = 0) =>
  layer.jobClaim({ queues, tasks: ["t"], limit, ahead, workerId, now: null });

const statuses = async (queueName: string) =>
  Object.fromEntries(
    (await sql.unsafe(`select status::text, count(*)::int as n from ${s}.jobs where queue = $1 group by 1`, [queueName])).map((r) => [r.status, r.n]),
  );

describe("claim_rows()", () => {
  it.each([
    ["a queue without limits (claim_rows())", "plan-free", null],
    ["a queue with a limit (claim())", "plan-capped", 1000],
  ])("%s finds the rows it claims without reading the table, after the table grew past what it held at the connection's first claims", async (_, name, concurrency) => {
    // A connection keeps the plans of a function's statements. Made while the table held a
    // few rows, the update of the claimed rows was kept as a read of the whole table, and every
    // claim got slower as finished jobs piled up (until an analyze of the table made it plan again).
    const fresh = `${schema}_${name.replace("-", "_")}`;
    const f = `"${fresh}"`;
    await migrate({ connection: DATABASE_URL, schema: fresh });
    const own = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
    try {
      await own.unsafe(`insert into ${f}.workers (id, queues, tasks, concurrency) values ('w-plan', '{}', '{}', 4)`);
      if (concurrency !== null) await own.unsafe(`insert into ${f}.queues (name, concurrency) values ($1, $2)`, [name, concurrency]);
      const claimSome = `select count(*)::int as n from ${f}.claim_rows($1::text::jsonb, '["t"]', 4, 'w-plan') where id is not null`;
      const queues = JSON.stringify([name]);
      for (let i = 0; i < 12; i++) {
        await own.unsafe(`insert into ${f}.jobs (task, queue) select 't', $1 from generate_series(1, 3)`, [name]);
        expect((await own.unsafe(claimSome, [queues]))[0]!.n).toBe(3);
      }
      await own.unsafe(`insert into ${f}.jobs (task, queue, status, finished_at) select 't', $1, 'completed', now() from generate_series(1, 20000)`, [name]);
      await own.unsafe(`insert into ${f}.jobs (task, queue) values ('t', $1)`, [name]);
      const { seqScans } = await jobsReadsDuring(own, f, async (tx) => {
        expect((await tx.unsafe(claimSome, [queues]))[0]!.n).toBe(1);
      });
      expect(seqScans).toBe(0);
    } finally {
      await own.end();
      await sql.unsafe(`drop schema ${f} cascade`);
    }
  });

  it.each([
    ["a concurrency limit", "read-capped", "concurrency", 1000],
    ["a group limit", "read-grouped", "group_concurrency", 2],
    ["a rate limit", "read-rated", "rate_max", 100000],
  ])("a queue with %s reads only the rows it claims, by index too, after the table grew past what it held at the connection's first claims", async (_, name, column, limit) => {
    // claim_rows() reads the meta of what claim() took through a join on jobs. Planned while the
    // table held a few rows, that join was a hash join over the whole primary key index (no
    // sequential scan, so the check above does not see it), kept by the connection as the table grew.
    const fresh = `${schema}_${name.replace("-", "_")}`;
    const f = `"${fresh}"`;
    await migrate({ connection: DATABASE_URL, schema: fresh });
    const own = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
    try {
      await own.unsafe(`insert into ${f}.workers (id, queues, tasks, concurrency) values ('w-plan', '{}', '{}', 4)`);
      const rate = column === "rate_max" ? ", rate_interval_ms" : "";
      await own.unsafe(`insert into ${f}.queues (name, ${column}${rate}) values ($1, $2${rate ? ", 1000" : ""})`, [name, limit]);
      const claimSome = `select count(*)::int as n from ${f}.claim_rows($1::text::jsonb, '["t"]', 4, 'w-plan') where id is not null`;
      const queues = JSON.stringify([name]);
      for (let i = 0; i < 12; i++) {
        await own.unsafe(`insert into ${f}.jobs (task, queue, group_key) select 't', $1, 'g' || g from generate_series(1, 3) g`, [name]);
        expect((await own.unsafe(claimSome, [queues]))[0]!.n).toBe(3);
        await own.unsafe(`update ${f}.jobs set status = 'completed', worker_id = null, finished_at = now() where status = 'running'`);
      }
      await own.unsafe(`insert into ${f}.jobs (task, queue, status, finished_at) select 't', $1, 'completed', now() from generate_series(1, 20000)`, [name]);
      await own.unsafe(`insert into ${f}.jobs (task, queue, group_key) values ('t', $1, 'g1')`, [name]);
      const { rows: read } = await jobsReadsDuring(own, f, async (tx) => {
        expect((await tx.unsafe(claimSome, [queues]))[0]!.n).toBe(1);
      });
      expect(read).toBeLessThan(100);
    } finally {
      await own.end();
      await sql.unsafe(`drop schema ${f} cascade`);
    }
  });

  it("claims in claim order, a row per job with its times, and starts only the first n - ahead", async () => {
    await addWorker("w-order");
    const low = await queue.enqueue("t", { n: 1 }, { queue: "r-order", priority: 0 });
    const high = await queue.enqueue("t", { n: 2 }, { queue: "r-order", priority: 5, meta: { traceparent: "x" } });
    const later = await queue.enqueueMany([3, 4].map((n) => ({ task: "t", payload: { n }, queue: "r-order" })));
    const before = performance.now();
    const { jobs, unstarted, wakeMs } = await claim(["r-order"], "w-order", 4, 2);
    expect(jobs.map((j) => j.id)).toEqual([high.id, low.id, ...later.map((j) => j.id)]);
    expect(jobs[0]).toEqual({
      id: high.id, task: "t", queue: "r-order", payload: { n: 2 }, priority: 5, attempt: 1, maxAttempts: 10,
      timeoutMs: null, key: null, createdAt: high.createdAt, runAt: high.runAt, meta: { traceparent: "x" },
    });
    expect(jobs[1]!.meta).toBeNull();
    expect(wakeMs).toBeNull();
    // the first two in claim order start now; the other two wait in the worker, dated by the database's clock
    const stored = await sql.unsafe(`select id::text, started_at from ${s}.jobs where queue = 'r-order'`);
    expect(new Set(stored.filter((r) => r.started_at !== null).map((r) => r.id))).toEqual(new Set([high.id, low.id]));
    expect([...unstarted.keys()].sort()).toEqual(later.map((j) => j.id).sort());
    const [clock] = await sql.unsafe(`select extract(epoch from now()) * 1000 as now`);
    for (const offset of unstarted.values()) expect(Math.abs(offset + before - Number(clock!.now))).toBeLessThan(5000);
    expect(await statuses("r-order")).toEqual({ running: 4 });
  });

  it("takes earlier queues first, limited queues through claim() and never ahead, and says when a rate limit lets the next start", async () => {
    await addWorker("w-mixed");
    await queue.configureQueue("r-rated", { rateLimit: { max: 1, intervalMs: 60_000 } });
    await queue.configureQueue("r-capped", { concurrency: 1 });
    await queue.enqueueMany([1, 2].map((n) => ({ task: "t", payload: { n }, queue: "r-rated" })));
    const capped = await queue.enqueueMany([1, 2].map((n) => ({ task: "t", payload: { n }, queue: "r-capped", meta: { n: String(n) } })));
    await queue.enqueueMany([1, 2, 3].map((n) => ({ task: "t", payload: { n }, queue: "r-free" })));
    const { jobs, unstarted, wakeMs } = await claim(["r-rated", "r-capped", "r-free"], "w-mixed", 6, 2);
    expect(jobs.map((j) => j.queue)).toEqual(["r-rated", "r-capped", "r-free", "r-free", "r-free"]);
    // a limited queue's job carries its meta too (read by id beside claim())
    expect(jobs[1]).toMatchObject({ id: capped[0]!.id, meta: { n: "1" }, createdAt: capped[0]!.createdAt });
    // the limited queues' jobs started; of the free queue's, n - ahead - 2 = 2 start, 1 waits
    expect([...unstarted.keys()]).toEqual([jobs[4]!.id]);
    // fewer than asked, and the rate's window now full: when its next start is allowed (version 12)
    expect(wakeMs).toBeGreaterThan(50_000);
    expect(wakeMs).toBeLessThanOrEqual(60_000);
    // the rate's one start in the window is spent: nothing from it, and when to come back
    const again = await claim(["r-rated"], "w-mixed", 6, 0);
    expect(again.jobs).toEqual([]);
    expect(again.wakeMs).toBeGreaterThan(50_000);
    expect(again.wakeMs).toBeLessThanOrEqual(60_000);
  });

  it("with no slot free, takes one job of a queue with limits, waiting as jobs claimed ahead do (version 12)", async () => {
    await addWorker("w-lim-ahead");
    await queue.configureQueue("r-lim-ahead", { concurrency: 5 });
    await queue.enqueueMany([1, 2, 3].map((n) => ({ task: "t", payload: { n }, queue: "r-lim-ahead", maxAttempts: 1 })));
    // every slot taken (limit 4, all of it ahead): one job, not started
    const { jobs, unstarted } = await claim(["r-lim-ahead"], "w-lim-ahead", 4, 4);
    expect(jobs).toHaveLength(1);
    expect([...unstarted.keys()]).toEqual([jobs[0]!.id]);
    expect(await sql.unsafe(`select status::text, started_at from ${s}.jobs where id = $1`, [jobs[0]!.id])).toEqual([{ status: "running", started_at: null }]);
    // its worker dies before starting it: it goes back without losing its one attempt
    await sql.unsafe(`delete from ${s}.workers where id = 'w-lim-ahead'`);
    expect((await layer.workerReap({ staleAfterMs: 30_000, now: null })).jobs).toEqual([{ id: jobs[0]!.id, status: "queued" }]);
  });

  it("says nothing of a rate limit's window once the claim took the queue's last job", async () => {
    await addWorker("w-rate-drained");
    await queue.configureQueue("r-rate-drained", { rateLimit: { max: 2, intervalMs: 60_000 } });
    await queue.enqueueMany([1, 2].map((n) => ({ task: "t", payload: { n }, queue: "r-rate-drained" })));
    const first = await claim(["r-rate-drained"], "w-rate-drained", 10);
    expect([first.jobs.length, first.wakeMs]).toEqual([2, null]);
    await queue.enqueue("t", {}, { queue: "r-rate-drained" });
    const held = await claim(["r-rate-drained"], "w-rate-drained", 10);
    expect(held.jobs).toHaveLength(0);
    expect(held.wakeMs).toBeGreaterThan(50_000);
  });

  it("with several queues held back by rate limits, says when the earliest of them may start again", async () => {
    await addWorker("w-rates");
    await queue.configureQueue("r-rate-soon", { rateLimit: { max: 1, intervalMs: 10_000 } });
    await queue.configureQueue("r-rate-late", { rateLimit: { max: 1, intervalMs: 50_000 } });
    for (const q of ["r-rate-soon", "r-rate-late"]) await queue.enqueueMany([1, 2].map((n) => ({ task: "t", payload: { n }, queue: q })));
    expect((await claim(["r-rate-soon", "r-rate-late"], "w-rates", 4)).jobs).toHaveLength(2);
    const held = await claim(["r-rate-soon", "r-rate-late"], "w-rates", 4);
    expect(held.jobs).toEqual([]);
    expect(held.wakeMs).toBeGreaterThan(5_000);
    expect(held.wakeMs).toBeLessThanOrEqual(10_000);
  });

  it("the worker gets the jobs in the database's claim order, to the microsecond", async () => {
    await addWorker("w-micro");
    // same millisecond, microseconds in the opposite order to the ids
    const [early] = await sql.unsafe(`select now() - interval '1 second' as t`);
    const base = (early!.t as Date).toISOString().slice(0, 23);
    const ids = await sql.unsafe(
      `insert into ${s}.jobs (task, queue, run_at) values
         ('t', 'r-micro', $1::timestamptz + interval '900 microseconds'),
         ('t', 'r-micro', $1::timestamptz + interval '100 microseconds')
       returning id::text`,
      [`${base}Z`],
    );
    // (ahead 0: both start now, so their run times alone decide the order)
    const claimed = await layer.jobClaim({ queues: ["r-micro"], tasks: ["t"], limit: 2, ahead: 0, workerId: "w-micro", now: null });
    // the later id runs first: its run_at is 800 us earlier
    expect(claimed.jobs.map((j) => j.id)).toEqual([ids[1]!.id, ids[0]!.id]);
    expect(claimed.jobs[0]!.runAt.getTime()).toBe(claimed.jobs[1]!.runAt.getTime());
  });

  it("times come back to the microsecond", async () => {
    await addWorker("w-exact");
    const [row] = await sql.unsafe(
      `insert into ${s}.jobs (task, queue, run_at, created_at) values
         ('t', 'r-exact', '2026-01-02T03:04:05.678999Z', '2026-01-02T03:04:05.000001Z') returning id::text`,
    );
    const rows = await sql.unsafe(`select created_us::text, run_us::text from ${s}.claim_rows('["r-exact"]', '["t"]', 1, 'w-exact')`);
    expect(rows).toEqual([{ created_us: "1767323045000001", run_us: "1767323045678999" }]);
    await sql.unsafe(`update ${s}.jobs set status = 'queued', worker_id = null where id = $1`, [row!.id]);
    const { jobs } = await claim(["r-exact"], "w-exact", 1);
    expect(jobs[0]!.runAt.toISOString()).toBe("2026-01-02T03:04:05.678Z");
    expect(jobs[0]!.createdAt.toISOString()).toBe("2026-01-02T03:04:05.000Z");
  });

  it("reads the same through a postgres.js given its own types and column transform, and one whose queries a wrapper starts", async () => {
    await addWorker("w-own");
    const own = postgres(DATABASE_URL, { max: 1, onnotice: () => {}, types: { bigint: postgres.BigInt }, transform: postgres.camel });
    // as a tracing wrapper might: the query runs before the claim can ask for its rows as arrays
    const unsafe = own.unsafe.bind(own);
    own.unsafe = ((text: string, params?: never[], options?: object) => {
      const query = unsafe(text, params, options);
      void query.then(() => {}, () => {});
      return query;
    }) as typeof own.unsafe;
    try {
      const ownLayer = createDb(own, { schema });
      const enqueued = await queue.enqueueMany([1, 2].map((n) => ({ task: "t", payload: { n }, queue: "r-own", maxAttempts: 3 })));
      await queue.configureQueue("r-own-rated", { rateLimit: { max: 1, intervalMs: 60_000 } });
      await queue.enqueueMany([1, 2].map((n) => ({ task: "t", payload: { n }, queue: "r-own-rated" })));
      const { jobs, unstarted, wakeMs } = await ownLayer.jobClaim({
        queues: ["r-own-rated", "r-own"], tasks: ["t"], limit: 3, ahead: 1, workerId: "w-own", now: null,
      });
      expect(jobs.map((j) => j.id)).toEqual([jobs[0]!.id, ...enqueued.map((j) => j.id)]);
      expect(jobs[1]).toMatchObject({ id: enqueued[0]!.id, maxAttempts: 3, timeoutMs: null, createdAt: enqueued[0]!.createdAt });
      expect([...unstarted.keys()]).toEqual([enqueued[1]!.id]);
      expect(wakeMs).toBeNull();
      const held = await ownLayer.jobClaim({ queues: ["r-own-rated"], tasks: ["t"], limit: 4, ahead: 0, workerId: "w-own", now: null });
      expect(held.jobs).toEqual([]);
      expect(held.wakeMs).toBeGreaterThan(50_000);
    } finally {
      await own.end();
    }
  });

  it("skips a paused queue, and a claim that finds nothing writes nothing", async () => {
    await addWorker("w-idle");
    await queue.enqueue("t", {}, { queue: "r-paused" });
    await queue.pauseQueue("r-paused");
    const xid = await sql.begin(async (tx) => {
      const rows = await tx.unsafe(`select * from ${s}.claim_rows('["r-paused", "r-empty"]', '["t"]', 4, 'w-idle')`);
      expect(rows).toEqual([]);
      const [x] = await tx.unsafe(`select pg_current_xact_id_if_assigned()::text as xid`);
      return x!.xid;
    });
    expect(xid).toBeNull();
    expect(await statuses("r-paused")).toEqual({ queued: 1 });
  });

  it("claims nothing for a worker without a lease", async () => {
    await queue.enqueue("t", {}, { queue: "r-nolease" });
    expect((await claim(["r-nolease"], "w-gone", 4)).jobs).toEqual([]);
    expect(await statuses("r-nolease")).toEqual({ queued: 1 });
  });

  it("undoes a claim whose worker row is deleted meanwhile (55000), leaving its jobs queued", async () => {
    await addWorker("w-reaped");
    await queue.enqueueMany([1, 2].map((n) => ({ task: "t", payload: { n }, queue: "r-reaped" })));
    const reaper = await sql.reserve();
    try {
      await reaper.unsafe("begin");
      await reaper.unsafe(`delete from ${s}.workers where id = 'w-reaped'`);
      const attempt = claim(["r-reaped"], "w-reaped", 4).then(
        () => null,
        (e: { code?: string; message?: string }) => e,
      );
      await untilWaitingOnLock(sql, `%${schema}%.claim_rows(%`);
      await reaper.unsafe("commit");
      const error = await attempt;
      expect(error).toMatchObject({ code: "55000" });
      expect(error!.message).toMatch(/w-reaped lost its lease/);
    } finally {
      reaper.release();
    }
    expect(await statuses("r-reaped")).toEqual({ queued: 2 });
  });
});

describe("a claim's signal", () => {
  /** Holds the queue's row locked (a claim that finds a job of a queue with limits waits on it) until released. */
  async function lockQueue(name: string) {
    await sql.unsafe(`insert into ${s}.queues (name, concurrency) values ($1, 10) on conflict (name) do nothing`, [name]);
    const holder = await sql.reserve();
    await holder.unsafe("begin");
    await holder.unsafe(`select 1 from ${s}.queues where name = $1 for update`, [name]);
    return async () => {
      await holder.unsafe("commit");
      holder.release();
    };
  }

  it("aborting it cancels the statement in the database: the claim rejects with 57014 and its jobs stay queued", async () => {
    await addWorker("w-cancel");
    await queue.enqueue("t", {}, { queue: "r-cancel" });
    const release = await lockQueue("r-cancel");
    try {
      const abort = new AbortController();
      const attempt = layer.jobClaim({ queues: ["r-cancel"], tasks: ["t"], limit: 4, workerId: "w-cancel", now: null }, abort.signal).then(
        () => null,
        (e: { code?: string }) => e,
      );
      await untilWaitingOnLock(sql, `%${schema}%.claim_rows(%`);
      abort.abort();
      // (the lock is still held: only the cancel ends the wait)
      expect(await attempt).toMatchObject({ code: "57014" });
    } finally {
      await release();
    }
    expect(await statuses("r-cancel")).toEqual({ queued: 1 });
  });

  it("a cancel that cannot reach the database leaves the claim to end as it would, and no unhandled rejection", async () => {
    await addWorker("w-cancel-refused");
    await queue.enqueue("t", {}, { queue: "r-cancel-refused" });
    const proxy = await startProxy({ host: "127.0.0.1", port: 5432 });
    const own = postgres(`postgres://postgres@127.0.0.1:${proxy.port}/test`, { max: 1, onnotice: () => {} });
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => void unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    const release = await lockQueue("r-cancel-refused");
    let released = false;
    let refusing: Promise<void> | undefined;
    try {
      const abort = new AbortController();
      const attempt = createDb(own, { schema }).jobClaim({ queues: ["r-cancel-refused"], tasks: ["t"], limit: 4, workerId: "w-cancel-refused", now: null }, abort.signal);
      await untilWaitingOnLock(sql, `%${schema}%.claim_rows(%`);
      // The claim's connection stays; a new one (the cancel request's) is refused. (refuse()
      // resolves once the open connections have closed: the proxy stops listening at once.)
      refusing = proxy.refuse(true);
      abort.abort();
      await release();
      released = true;
      expect((await attempt).jobs).toHaveLength(1);
      // (a rejection left unhandled is reported once the turn that made it ends)
      await new Promise((r) => setImmediate(r));
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
      if (!released) await release();
      await own.end({ timeout: 1 });
      await proxy.close();
      await refusing;
    }
  });
});
