import postgres from "postgres";
import { describe, expect, it } from "vitest";
import { createDb } from "../src/db/db.ts";
import { endParams, type FinishRow, finishSql } from "../src/db/finish.ts";
import { migrate } from "../src/index.ts";
import { DATABASE_URL, deadline, jobsReadsDuring, testDb, until } from "./support/db.ts";

// finish() (sql/000005) through the database layer, as the worker's finish batcher calls it.
const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;
const s = `"${schema}"`;
const layer = createDb(sql, { schema });

/** Enqueues n jobs on a queue of their own and claims them for worker w (one start, the rest claimed ahead). */
async function running(queueName: string, n: number, worker: string) {
  await sql.unsafe(`insert into ${s}.workers (id, queues, tasks, concurrency) values ($1, '{}', '{}', 1) on conflict do nothing`, [worker]);
  await queue.enqueueMany(Array.from({ length: n }, (_, i) => ({ task: "t", payload: { i }, queue: queueName, maxAttempts: 3 })));
  const claimed = await layer.jobClaim({ queues: [queueName], tasks: ["t"], limit: n, ahead: n - 1, workerId: worker, now: null });
  expect(claimed.jobs).toHaveLength(n);
  return claimed.jobs;
}

const end = (id: string, kind: FinishRow["kind"], more: Partial<FinishRow> = {}): FinishRow => ({
  id, attempt: 1, kind, result: null, error: null, delay_ms: null, started_ms: null, ...more,
});
const error = (message: string) => ({ attempt: 1, name: "Error", message, worker: "w" });

async function rows(queueName: string) {
  return sql.unsafe(
    `select id::text, status::text, attempts, result, errors, progress, worker_id, started_at, finished_at, run_at, now() as now
       from ${s}.jobs where queue = $1 order by id`,
    [queueName],
  );
}

describe("finish()", () => {
  it("writes each kind of end, with results and errors where there are some", async () => {
    const jobs = await running("f-kinds", 6, "w-kinds");
    const [done, retried, failed, cancelled, released, snoozed] = jobs.map((j) => j.id) as [string, string, string, string, string, string];
    const ended = await layer.jobFinishMany(
      [
        end(done, "completed", { result: { ok: [1, "two"] } }),
        end(retried, "retry", { error: error("try again"), delay_ms: 60_000 }),
        end(failed, "failed", { error: error("no") }),
        end(cancelled, "cancelled", { error: error("asked to stop") }),
        end(released, "released"),
        end(snoozed, "snoozed", { delay_ms: 30_000 }),
      ],
      "w-kinds",
      null,
    );
    // in the order of the ends: done, retried, failed, cancelled, released, snoozed
    expect(ended).toEqual(["completed", "queued", "failed", "cancelled", "queued", "queued"]);
    const byId = new Map((await rows("f-kinds")).map((r) => [r.id, r]));
    const r = (id: string) => byId.get(id)!;
    expect(r(done)).toMatchObject({ status: "completed", result: { ok: [1, "two"] }, progress: 100, attempts: 1, worker_id: null });
    expect(r(done).finished_at).not.toBeNull();
    expect(r(retried)).toMatchObject({ status: "queued", attempts: 1, finished_at: null, worker_id: null });
    expect(r(retried).errors).toEqual([expect.objectContaining({ message: "try again", at: expect.any(String) })]);
    expect(r(retried).run_at.getTime() - r(retried).now.getTime()).toBeGreaterThan(55_000);
    expect(r(failed)).toMatchObject({ status: "failed", result: null });
    expect(r(failed).errors).toEqual([expect.objectContaining({ message: "no" })]);
    expect(r(cancelled)).toMatchObject({ status: "cancelled" });
    // given back unrun: the attempt does not count, and no start is kept
    expect(r(released)).toMatchObject({ status: "queued", attempts: 0, started_at: null, errors: [] });
    expect(r(snoozed)).toMatchObject({ status: "queued", attempts: 0, started_at: null });
    expect(r(snoozed).run_at.getTime() - r(snoozed).now.getTime()).toBeGreaterThan(25_000);
  });

  it("skips a stale end (another attempt, another worker) and leaves the job as it is", async () => {
    const [job] = await running("f-stale", 1, "w-stale");
    const ended = await layer.jobFinishMany(
      [end(job!.id, "completed", { attempt: 2 }), { ...end(job!.id, "failed"), error: error("x") }],
      "w-other",
      null,
    );
    expect(ended).toEqual([null, null]);
    expect(await rows("f-stale")).toEqual([expect.objectContaining({ status: "running", worker_id: "w-stale", errors: [] })]);
  });

  it("records the start of a job claimed ahead from its end, and a cancel asked for meanwhile wins over a retry", async () => {
    const [first, ahead] = await running("f-start", 2, "w-start");
    const startedMs = Date.now() - 1234.5;
    await queue.cancel(ahead!.id);
    const ended = await layer.jobFinishMany(
      [end(first!.id, "completed"), end(ahead!.id, "retry", { error: error("flaky"), delay_ms: 10, started_ms: startedMs })],
      "w-start",
      null,
    );
    expect(ended[1]).toBe("cancelled");
    const [, r] = await rows("f-start");
    expect(r).toMatchObject({ status: "cancelled" });
    expect(Math.abs(r!.started_at.getTime() - startedMs)).toBeLessThan(2);
  });

  it("a cancel asked for before a release or a snooze ends the job cancelled, its attempt not counted", async () => {
    const [released, snoozed] = await running("f-cancel-unrun", 2, "w-cancel-unrun");
    await queue.cancel(released!.id);
    await queue.cancel(snoozed!.id);
    const ended = await layer.jobFinishMany([end(released!.id, "released"), end(snoozed!.id, "snoozed", { delay_ms: 5_000 })], "w-cancel-unrun", null);
    expect(ended).toEqual(["cancelled", "cancelled"]);
    for (const r of await rows("f-cancel-unrun")) {
      expect(r).toMatchObject({ status: "cancelled", attempts: 0, worker_id: null });
      expect(r.finished_at).not.toBeNull();
    }
  });

  it("announces a slot freed in a queue with a running limit, and nothing for a retry that is not due yet", async () => {
    await queue.configureQueue("f-capped", { concurrency: 1 });
    const [capped] = await running("f-capped", 1, "w-slots");
    const [later] = await running("f-later", 1, "w-slots");
    const heard: { queues: string[] }[] = [];
    const listener = await sql.listen("job_enqueued", (payload) => {
      const p = JSON.parse(payload);
      if (p.schema === schema) heard.push(p);
    });
    try {
      await layer.jobFinishMany([end(later!.id, "retry", { error: error("later"), delay_ms: 60_000 })], "w-slots", null);
      await layer.jobFinishMany([end(capped!.id, "completed")], "w-slots", null);
      await until(() => heard.length > 0);
      // (notifications of one connection arrive in commit order: the retry's would have come first)
      expect(heard).toEqual([expect.objectContaining({ queues: ["f-capped"] })]);
    } finally {
      await listener.unlisten();
    }
  });

  it("finds the jobs it ends without reading the table, after the table grew past what it held at the connection's first ends", async () => {
    // A connection keeps the plans of a function's statements. Made while the table held a few
    // rows, finish()'s update was kept as a hash join over a read of the whole table: a worker
    // that started on an empty table and then met a backlog read every row at every end, fell
    // thousands of ends behind its handlers, and a stop gave up on the ends it could not write.
    const fresh = `${schema}_finish_plan`;
    const f = `"${fresh}"`;
    await migrate({ connection: DATABASE_URL, schema: fresh });
    const own = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
    try {
      await own.unsafe(`insert into ${f}.workers (id, queues, tasks, concurrency) values ('w-plan', '{}', '{}', 4)`);
      const claimSome = `select id::text from ${f}.claim_rows('["default"]', '["t"]', 4, 'w-plan') where id is not null`;
      const finish = async (on: postgres.Sql | postgres.TransactionSql, ids: string[]) => {
        const [row] = await on.unsafe(finishSql(f), ["w-plan", ...endParams(ids.map((id) => end(id, "completed"))), null], { prepare: true });
        return row!.statuses as string;
      };
      for (let i = 0; i < 12; i++) {
        await own.unsafe(`insert into ${f}.jobs (task) select 't' from generate_series(1, 3)`);
        const ids = (await own.unsafe(claimSome)).map((r) => r.id as string);
        expect(await finish(own, ids)).toBe("ccc");
      }
      await own.unsafe(`insert into ${f}.jobs (task, status, finished_at) select 't', 'completed', now() from generate_series(1, 20000)`);
      await own.unsafe(`insert into ${f}.jobs (task) values ('t')`);
      const ids = (await own.unsafe(claimSome)).map((r) => r.id as string);
      const { seqScans } = await jobsReadsDuring(own, f, async (tx) => {
        expect(await finish(tx, ids)).toBe("c");
      });
      expect(seqScans).toBe(0);
    } finally {
      await own.end();
      await sql.unsafe(`drop schema ${f} cascade`);
    }
  });

  it("writes nothing for an empty batch", async () => {
    expect(await layer.jobFinishMany([], "w-none", null)).toEqual([]);
  });

  it("announces the queues that got runnable jobs back, once per statement", async () => {
    const jobs = await running("f-notify", 3, "w-notify");
    const heard: string[] = [];
    const listener = await sql.listen("job_enqueued", (payload) => heard.push(payload));
    try {
      await layer.jobFinishMany(jobs.map((j) => end(j.id, "released")), "w-notify", null);
      await until(() => heard.some((p) => p.includes("f-notify")));
      const mine = heard.map((p) => JSON.parse(p)).filter((p) => p.schema === schema);
      expect(mine).toEqual([expect.objectContaining({ queues: ["f-notify"], t: expect.any(Number) })]);
    } finally {
      await listener.unlisten();
    }
  });
});

describe("a handler's error with text Postgres cannot store", () => {
  it("ends the job failed with the text made visible, and the other ends of its batch land too", async () => {
    const w = db.worker({
      queues: ["unstorable"],
      finishBatchMs: 50, // both ends in one batch
      tasks: {
        nul: async () => {
          throw new Error("could not parse record: \u0000\u0001");
        },
        cut: async () => {
          throw new Error("upstream said: 😀😀".slice(0, -1)); // a string cut in the middle of an emoji
        },
        good: async () => "ok",
      },
    });
    await w.start();
    try {
      const [nul, cut, good] = await queue.enqueueMany([
        { task: "nul", queue: "unstorable", maxAttempts: 1 },
        { task: "cut", queue: "unstorable", maxAttempts: 1 },
        { task: "good", queue: "unstorable" },
      ]);
      await Promise.all([
        w.waitFor("job:failed", (e) => e.job.id === nul!.id, deadline(5000)),
        w.waitFor("job:failed", (e) => e.job.id === cut!.id, deadline(5000)),
        w.waitFor("job:completed", (e) => e.job.id === good!.id, deadline(5000)),
      ]);
      const [a, b, c] = await Promise.all([nul, cut, good].map((j) => queue.getJob(j!.id)));
      expect([a!.status, b!.status, c!.status]).toEqual(["failed", "failed", "completed"]);
      expect(a!.errors[0]!.message).toBe("could not parse record: \\0\u0001");
      expect(b!.errors[0]!.message).toBe("upstream said: 😀\uFFFD");
      expect(c!.result).toBe("ok");
    } finally {
      await w.stop();
    }
  });
});
