import { describe, expect, it } from "vitest";
import { createWorker } from "../src/index.ts";
import { DATABASE_URL, deadline, gate, testDb, until } from "./support/db.ts";
import { startProxy } from "./support/tcp-proxy.ts";

const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;
const s = `"${schema}"`;

/** Makes a running job owned by a worker that stopped heartbeating `ageMs` ago. */
async function orphan(
  task: string,
  queueName: string,
  opts: { ageMs: number; attempts?: number; maxAttempts?: number; workerId?: string; started?: boolean },
) {
  const workerId = opts.workerId ?? `ghost-${crypto.randomUUID().slice(0, 6)}`;
  await sql.unsafe(
    `insert into ${s}.workers (id, queues, tasks, concurrency, heartbeat_at)
     values ($1, '{}', '{}', 1, now() - $2::int * interval '1 millisecond')`,
    [workerId, opts.ageMs],
  );
  const [job] = await sql.unsafe(`select id::text from ${s}.enqueue($1, '{}', queue => $2, max_attempts => $3)`, [
    task,
    queueName,
    opts.maxAttempts ?? 10,
  ]);
  await sql.unsafe(
    `update ${s}.jobs set status = 'running', worker_id = $2, attempts = $3,
       started_at = case when $4 then now() end where id = $1`,
    [job!.id, workerId, opts.attempts ?? 1, opts.started ?? true],
  );
  return { workerId, jobId: job!.id as string };
}

describe("heartbeats and the reaper", () => {
  it("reaps a dead worker: its job goes back to the queue and runs again", async () => {
    const ghost = await orphan("r", "reap", { ageMs: 60_000 });
    const w = db.worker({ queues: ["reap"], reaperIntervalMs: 60_000, tasks: { r: async () => "rescued" } });
    const reaped = w.waitFor("reaper:reaped", () => true, deadline());
    const done = w.waitFor("job:completed", (e) => e.job.id === ghost.jobId, deadline());
    await w.start(); // the reaper runs once at start
    expect(await reaped).toMatchObject({ ran: true, workers: [ghost.workerId], jobs: [{ id: ghost.jobId, status: "queued" }] });
    await done;
    const job = await queue.getJob(ghost.jobId);
    expect(job).toMatchObject({ status: "completed", attempts: 2, result: "rescued" });
    expect(job!.errors).toMatchObject([{ attempt: 1, name: "WorkerLostError", worker: ghost.workerId }]);
  });

  it("fails a reaped job that has no attempts left, and leaves live workers alone", async () => {
    const dead = await orphan("r", "reap2", { ageMs: 60_000, attempts: 2, maxAttempts: 2 });
    const alive = await orphan("r", "reap2", { ageMs: 0 });
    const w = db.worker({ queues: ["none"], reaperIntervalMs: 60_000, tasks: { r: async () => 1 } });
    await w.start();
    const result = await w.reap();
    expect(result.ran).toBe(true);
    expect((await queue.getJob(dead.jobId))).toMatchObject({ status: "failed", errors: [{ name: "WorkerLostError" }] });
    expect((await queue.getJob(dead.jobId))!.finishedAt).toBeInstanceOf(Date);
    expect((await queue.getJob(alive.jobId))!.status).toBe("running");
    await sql.unsafe(`delete from ${s}.workers where id = $1`, [alive.workerId]);
  });

  it("a dead worker's job that was claimed ahead and never started goes back uncounted, once; a second time it counts", async () => {
    const ahead = await orphan("r", "reap-ahead", { ageMs: 60_000, attempts: 1, maxAttempts: 1, started: false });
    const ran = await orphan("r", "reap-ahead", { ageMs: 60_000, attempts: 1, maxAttempts: 1 });
    const w = db.worker({ queues: ["none"], reaperIntervalMs: 60_000, tasks: { r: async () => 1 } });
    await w.start();
    expect(await queue.getJob(ahead.jobId)).toMatchObject({
      status: "queued", attempts: 0, startedAt: null, finishedAt: null, workerId: null,
      errors: [{ attempt: 1, name: "WorkerLostError", worker: ahead.workerId, unstarted: true }],
    });
    expect((await queue.getJob(ran.jobId))!.errors[0]!.unstarted).toBeUndefined();
    expect(await queue.getJob(ran.jobId)).toMatchObject({ status: "failed", attempts: 1, errors: [{ name: "WorkerLostError" }] });

    // Claimed ahead again, and its worker dies again before it starts: now the attempt counts
    // (a job that kills its worker before its start is written must still run out of attempts).
    const again = `ghost-${crypto.randomUUID().slice(0, 6)}`;
    await sql.unsafe(`insert into ${s}.workers (id, queues, tasks, concurrency, heartbeat_at) values ($1, '{}', '{}', 1, now() - interval '1 minute')`, [again]);
    await sql.unsafe(`update ${s}.jobs set status = 'running', worker_id = $2, attempts = 1, started_at = null where id = $1`, [ahead.jobId, again]);
    await w.reap();
    expect(await queue.getJob(ahead.jobId)).toMatchObject({
      status: "failed", attempts: 1,
      errors: [{ name: "WorkerLostError", unstarted: true }, { name: "WorkerLostError", worker: again, unstarted: true }],
    });
  });

  it("takes back running jobs whose worker row is gone", async () => {
    const ghost = await orphan("r", "reap3", { ageMs: 0 });
    await sql.unsafe(`delete from ${s}.workers where id = $1`, [ghost.workerId]);
    const w = db.worker({ queues: ["none"], reaperIntervalMs: 60_000, tasks: { r: async () => 1 } });
    await w.start();
    expect((await queue.getJob(ghost.jobId))!.status).toBe("queued");
  });

  it("a reaper never declares its own worker dead, even when its row looks stale; another worker's does", async () => {
    const w = db.worker({ queues: ["self-reap"], reaperIntervalMs: 60_000, heartbeatIntervalMs: 60_000, staleAfterMs: 120_000, tasks: { r: async () => 1 } });
    const other = db.worker({ queues: ["none"], reaperIntervalMs: 60_000, tasks: { r: async () => 1 } });
    await w.start();
    await other.start();
    try {
      // its row as a stalled event loop or a skewed clock would leave it: its last beat long ago
      await sql.unsafe(`update ${s}.workers set heartbeat_at = now() - interval '1 hour' where id = $1`, [w.id]);
      expect((await w.reap()).workers).toEqual([]);
      expect(await sql.unsafe(`select 1 from ${s}.workers where id = $1`, [w.id])).toHaveLength(1);
      expect((await other.reap()).workers).toEqual([w.id]);
    } finally {
      await other.stop();
      await w.stop();
    }
  });

  it("only one reaper works at a time", async () => {
    const w = db.worker({ queues: ["none"], reaperIntervalMs: 60_000, tasks: { r: async () => 1 } });
    await w.start();
    const held = gate();
    const holding = sql.begin(async (tx) => {
      await tx.unsafe(`select pg_advisory_xact_lock(hashtext($1))`, [`pgpulse:reaper:${schema}`]);
      await held.promise;
    });
    await until(async () => (await sql`select 1 from pg_locks where locktype = 'advisory' and granted`).length > 0);
    expect((await w.reap()).ran).toBe(false);
    held.open();
    await holding;
    expect((await w.reap()).ran).toBe(true);
  });

  it("a restart under the same id recovers that worker's orphans at once", async () => {
    const ghost = await orphan("r", "restart", { ageMs: 0, workerId: "fixed-id" });
    const w = db.worker({ id: "fixed-id", queues: ["restart"], reaperIntervalMs: 60_000, tasks: { r: async () => "again" } });
    const started = w.waitFor("worker:started", () => true, deadline());
    const done = w.waitFor("job:completed", (e) => e.job.id === ghost.jobId, deadline());
    await w.start();
    expect((await started).recovered).toBe(1);
    await done;
  });

  it("a worker whose lease was taken gives its jobs up and registers again", async () => {
    const started = gate();
    let reason: unknown;
    let runs = 0;
    const w = db.worker({
      queues: ["lease"],
      heartbeatIntervalMs: 30,
      staleAfterMs: 60_000,
      tasks: {
        hold: (_p, ctx) =>
          ++runs > 1
            ? "second run"
            : (started.open(), new Promise((_, rej) => ctx.signal.addEventListener("abort", () => rej((reason = ctx.signal.reason))))),
      },
    });
    await w.start();
    const job = await queue.enqueue("hold", {}, { queue: "lease" });
    await started.promise;
    const lost = w.waitFor("worker:lease-lost", () => true, deadline());
    const done = w.waitFor("job:completed", (e) => e.job.id === job.id, deadline());
    // what another worker's reaper does to a worker it believes dead
    await sql.unsafe(`delete from ${s}.workers where id = $1`, [w.id]);
    await lost;
    expect(String(reason)).toMatch(/lease lost/);
    expect((await done).result).toBe("second run");
    expect(await sql.unsafe(`select 1 from ${s}.workers where id = $1`, [w.id])).toHaveLength(1);
  });

  it("keeps heartbeating through a graceful stop longer than staleAfterMs, so its job is not reaped", async () => {
    const started = gate();
    const finish = gate();
    const timing = { heartbeatIntervalMs: 40, staleAfterMs: 200 };
    const a = db.worker({ queues: ["longstop"], ...timing, tasks: { slow: async () => (started.open(), await finish.promise, "finished") } });
    const b = db.worker({ queues: ["none"], ...timing, reaperIntervalMs: 60_000, tasks: { slow: async () => 1 } });
    await Promise.all([a.start(), b.start()]);
    const job = await queue.enqueue("slow", {}, { queue: "longstop" });
    await started.promise;
    let beats = 0;
    const enough = new Promise<void>((r) => a.on("worker:heartbeat", () => ++beats === 8 && r()));
    const stopping = a.stop({ gracefulStopMs: 30_000 });
    await enough; // 8 heartbeats at 40 ms: the stop has outlasted staleAfterMs
    const pass = await b.reap();
    expect(pass.workers).not.toContain(a.id);
    finish.open();
    await stopping;
    expect(await queue.getJob(job.id)).toMatchObject({ status: "completed", result: "finished", attempts: 1, errors: [] });
  });

  it("a worker without its lease claims nothing", async () => {
    const w = db.worker({ queues: ["nolease"], heartbeatIntervalMs: 60_000, staleAfterMs: 120_000, pollIntervalMs: 60_000, tasks: { r: async () => 1 } });
    await w.start();
    await sql.unsafe(`delete from ${s}.workers where id = $1`, [w.id]);
    const job = await queue.enqueue("r", {}, { queue: "nolease" });
    expect(await w.sweep()).toBe(0);
    expect((await queue.getJob(job.id))!.status).toBe("queued");
  });

  it("claim() leaves started_at null on the jobs claimed ahead of the free slots", async () => {
    await queue.enqueueMany([1, 2, 3, 4].map((n) => ({ task: "t", payload: { n }, queue: "claim-ahead" })));
    await sql.unsafe(`insert into ${s}.workers (id, queues, tasks, concurrency) values ('sql-claimer', '{}', '{}', 2)`);
    const [clock] = await sql.unsafe(`select extract(epoch from now()) * 1000 as now`);
    const rows = await sql.unsafe(`select id::text, waiting_since_ms from ${s}.claim('["claim-ahead"]', '["t"]', 4, 'sql-claimer', null, 2) order by id`);
    expect(rows.map((r) => r.waiting_since_ms === null)).toEqual([true, true, false, false]);
    // the claim's time, on the database's clock (this test's own statement ran just before)
    for (const r of rows.slice(2)) expect(Math.abs(Number(r.waiting_since_ms) - Number(clock!.now))).toBeLessThan(5000);
    const stored = await sql.unsafe(`select started_at from ${s}.jobs where queue = 'claim-ahead' order by id`);
    expect(stored.map((r) => r.started_at !== null)).toEqual([true, true, false, false]);
    await sql.unsafe(`update ${s}.jobs set status = 'cancelled', worker_id = null where queue = 'claim-ahead'`);
    await sql.unsafe(`delete from ${s}.workers where id = 'sql-claimer'`);
  });

  it("a job claimed ahead gets its start written once it starts: by the progress write while it runs, by its end's write otherwise", async () => {
    const second = gate();
    const third = gate();
    const w = db.worker({
      queues: ["stamp"],
      concurrency: 1,
      progressIntervalMs: 20,
      tasks: {
        s: async (p: { n: number }) => {
          if (p.n === 2) await second.promise;
          if (p.n === 3) await third.promise;
        },
      },
    });
    const jobs = await queue.enqueueMany([1, 2, 3, 4, 5].map((n) => ({ task: "s", payload: { n }, queue: "stamp" })));
    const ids = jobs.map((j) => j.id);
    const startedAt = async () =>
      (await sql.unsafe(`select id::text, status, started_at from ${s}.jobs where id = any($1::bigint[]) order by id`, [ids])).map((r) => r.started_at);
    await w.start();
    // Job 1 ran alone; its quick run made the next claim take the rest, 2 to start and 3-5 ahead.
    await until(async () => (await startedAt())[1] !== null && w.stats.completed === 1);
    await until(async () => {
      const [r] = await sql.unsafe(`select count(*)::int as n from ${s}.jobs where queue = 'stamp' and status = 'running'`);
      return r!.n === 4;
    });
    expect((await startedAt()).slice(2).every((t) => t === null)).toBe(true);
    second.open();
    // Job 3 now runs (held on its gate): the progress write records its start.
    await until(async () => (await startedAt())[2] !== null);
    expect((await startedAt()).slice(3).every((t) => t === null)).toBe(true);
    third.open();
    await until(() => w.stats.completed === 5);
    const done = await sql.unsafe(`select started_at, finished_at from ${s}.jobs where id = any($1::bigint[]) order by id`, [ids]);
    for (const r of done) {
      expect(r.started_at).toBeInstanceOf(Date);
      expect(r.started_at.getTime()).toBeLessThanOrEqual(r.finished_at.getTime());
    }
    // job 3 waited for job 2 to end, so it started after job 2 did
    expect(done[2]!.started_at.getTime()).toBeGreaterThanOrEqual(done[1]!.started_at.getTime());
  });

  it("gives back a job marked running on it that it is not running (a claim whose reply was lost)", async () => {
    const w = db.worker({ queues: ["lostreply"], heartbeatIntervalMs: 30, pollIntervalMs: 60_000, tasks: { r: async () => "ran" } });
    await w.start();
    const job = await queue.enqueue("other-task", {}, { queue: "lostreply" });
    // what a claim that committed, but whose reply never arrived, leaves behind
    await sql.unsafe(`update ${s}.jobs set status = 'running', worker_id = $2, attempts = 1, started_at = now() where id = $1`, [job.id, w.id]);
    await until(async () => (await queue.getJob(job.id))!.status === "queued");
    expect(await queue.getJob(job.id)).toMatchObject({ attempts: 0, workerId: null });
  });

  it("a job released at stop after a cancel was asked for ends cancelled, with a finish time", async () => {
    const started = gate();
    const w = db.worker({ queues: ["relcancel"], heartbeatIntervalMs: 60_000, staleAfterMs: 120_000, tasks: { r: (_p, ctx) => (started.open(), new Promise((_, rej) => ctx.signal.addEventListener("abort", () => rej(ctx.signal.reason)))) } });
    await w.start();
    const job = await queue.enqueue("r", {}, { queue: "relcancel" });
    await started.promise;
    await sql.unsafe(`update ${s}.jobs set cancel_requested_at = now() where id = $1`, [job.id]);
    await w.stop({ gracefulStopMs: 0 });
    const stored = await queue.getJob(job.id);
    expect(stored).toMatchObject({ status: "cancelled" });
    expect(stored!.finishedAt).toBeInstanceOf(Date);
  });

  it("a worker started while the database is down waits for it, and starts when it comes", async () => {
    const proxy = await startProxy({ host: "127.0.0.1", port: 5432 });
    await proxy.refuse(true);
    const warnings: string[] = [];
    let retried: () => void;
    const twice = new Promise<void>((r) => (retried = r));
    const logger = {
      debug() {}, info() {}, error() {},
      warn(message: string) {
        warnings.push(message);
        if (warnings.filter((m) => m.includes("database not reachable")).length === 2) retried();
      },
    };
    const w = createWorker({
      connection: `postgres://postgres@127.0.0.1:${proxy.port}/test`,
      schema, logger, queues: ["late-db"], tasks: { r: async () => "ran" },
    });
    try {
      const started = w.start();
      await twice;
      expect(warnings[0]).toMatch(/starting: database not reachable \(\w+: .*\); trying again in \d+ ms/);
      await proxy.refuse(false);
      await started;
      const job = await queue.enqueue("r", {}, { queue: "late-db" });
      await w.waitFor("job:completed", (e) => e.job.id === job.id, deadline());
    } finally {
      await w.stop({ gracefulStopMs: 0 });
      await proxy.close();
    }
  });

  it("stop() ends a start that is still waiting for the database", async () => {
    const proxy = await startProxy({ host: "127.0.0.1", port: 5432 });
    await proxy.refuse(true);
    let warned: () => void;
    const waiting = new Promise<void>((r) => (warned = r));
    const w = createWorker({
      connection: `postgres://postgres@127.0.0.1:${proxy.port}/test`,
      schema, queues: ["late-db2"], tasks: { r: async () => "ran" },
      logger: { debug() {}, info() {}, error() {}, warn: () => warned() },
    });
    try {
      const started = w.start();
      await waiting;
      await w.stop();
      await expect(started).rejects.toBeTruthy();
    } finally {
      await proxy.close();
    }
  });

  it("stop() returns even when the database has gone silent", async () => {
    const proxy = await startProxy({ host: "127.0.0.1", port: 5432 });
    const started = gate();
    const w = createWorker({
      connection: `postgres://postgres@127.0.0.1:${proxy.port}/test`,
      schema,
      logger: "silent",
      queues: ["silentdb"],
      tasks: { r: (_p, ctx) => (started.open(), new Promise((_, rej) => ctx.signal.addEventListener("abort", () => rej(ctx.signal.reason)))) },
    });
    try {
      await w.start();
      const job = await queue.enqueue("r", {}, { queue: "silentdb" });
      await started.promise;
      proxy.stallAll();
      await w.stop({ gracefulStopMs: 0 }); // bounded by the stop's write budget
      // the job is still leased to the silent worker; once its row is stale the reaper takes it back
      expect((await queue.getJob(job.id))!.status).toBe("running");
      await sql.unsafe(`update ${s}.workers set heartbeat_at = now() - interval '1 hour' where id = $1`, [w.id]);
      const rescuer = db.worker({ queues: ["none"], reaperIntervalMs: 60_000, tasks: { r: async () => 1 } });
      await rescuer.start();
      expect((await queue.getJob(job.id))!.status).toBe("queued");
    } finally {
      await proxy.close();
    }
  }, 30_000);

  it("heartbeats refresh the worker row", async () => {
    const w = db.worker({ queues: ["none"], heartbeatIntervalMs: 20, tasks: { r: async () => 1 } });
    await w.start();
    const [before] = await sql.unsafe(`select heartbeat_at from ${s}.workers where id = $1`, [w.id]);
    await w.waitFor("worker:heartbeat", () => true, deadline());
    const [after] = await sql.unsafe(`select heartbeat_at from ${s}.workers where id = $1`, [w.id]);
    expect(after!.heartbeat_at.getTime()).toBeGreaterThan(before!.heartbeat_at.getTime());
  });

  it("uses the injected clock in SQL: a worker whose clock is ahead runs a job that is due by that clock", async () => {
    const job = await queue.enqueue("r", {}, { queue: "clock", delayMs: 10 * 60_000 });
    const w = db.worker({ queues: ["clock"], clock: () => new Date(Date.now() + 20 * 60_000), tasks: { r: async () => "early" } });
    const done = w.waitFor("job:completed", (e) => e.job.id === job.id, deadline());
    await w.start();
    await done;
  });
});

describe("the listener", () => {
  it("comes back after its backend is terminated, and notifications flow again", async () => {
    const w = db.worker({ queues: ["listen"], pollIntervalMs: 600_000, tasks: { r: async () => "heard" } });
    await w.start();
    expect(w.listening).toBe(true);
    const back = w.waitFor("listener:up", () => true, deadline());
    const [killed] = await sql`
      select pg_terminate_backend(pid) as ok from pg_stat_activity
      where application_name = ${`pgpulse listener ${w.id}`}`;
    expect(killed?.ok).toBe(true);
    await back;
    // with the sweep 10 minutes away, only a notification can deliver this job
    const job = await queue.enqueue("r", {}, { queue: "listen" });
    await w.waitFor("job:completed", (e) => e.job.id === job.id, deadline());
  });

  it("a half-open LISTEN connection is detected by the health check and replaced", async () => {
    const proxy = await startProxy({ host: "127.0.0.1", port: 5432 });
    try {
      const w = createWorker({
        connection: `postgres://postgres@127.0.0.1:${proxy.port}/test`,
        schema,
        logger: "error",
        queues: ["halfopen"],
        pollIntervalMs: 600_000,
        listenerHealthIntervalMs: 200,
        listenerHealthTimeoutMs: 1000,
        tasks: { r: async () => "heard" },
      });
      await w.start();
      try {
        expect(proxy.listeners()).toBe(1);
        const down = w.waitFor("listener:down", () => true, deadline());
        const up = down.then(() => w.waitFor("listener:up", () => true, deadline()));
        proxy.stallListeners();
        await down;
        await up;
        expect(proxy.listeners()).toBe(1);
        const job = await queue.enqueue("r", {}, { queue: "halfopen" });
        await w.waitFor("job:completed", (e) => e.job.id === job.id, deadline());
      } finally {
        await w.stop({ gracefulStopMs: 0 });
      }
    } finally {
      await proxy.close();
    }
  });

  it("a job enqueued in an open transaction is not seen until it commits", async () => {
    const w = db.worker({ queues: ["tx"], pollIntervalMs: 600_000, tasks: { r: async () => 1 } });
    await w.start();
    const committed = gate();
    let id = "";
    const tx = sql.begin(async (t) => {
      id = (await queue.enqueue("r", {}, { queue: "tx", tx: t })).id;
      await committed.promise;
    });
    await until(() => id !== "");
    expect(await w.sweep()).toBe(0);
    const done = w.waitFor("job:completed", (e) => e.job.id === id, deadline());
    committed.open();
    await tx;
    await done;
  });
});

it("the default connection string works with DATABASE_URL", () => {
  expect(DATABASE_URL).toMatch(/^postgres(ql)?:\/\//);
});
