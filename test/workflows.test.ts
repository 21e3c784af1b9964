import { describe, expect, it } from "vitest";
import { MAX_FLOW_JOBS, PermanentError, PgPulseError, type JobEvent } from "../src/index.ts";
import postgres from "postgres";
import { DATABASE_URL, deadline, gate, testDb, until, untilWaitingOnLock } from "./support/db.ts";

// Flows (dependencies between jobs) and batches, against real workers (sql/000006).
const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;
const s = `"${schema}"`;

const statusOf = async (ids: string[]) => {
  const rows = await sql.unsafe(`select id::text, status::text from ${s}.jobs where id = any($1::bigint[])`, [ids]);
  const by = new Map(rows.map((r) => [r.id as string, r.status as string]));
  return ids.map((id) => by.get(id));
};
const counts = async () => {
  const [r] = await sql.unsafe(`select (select count(*)::int from ${s}.jobs) as jobs, (select count(*)::int from ${s}.job_deps) as edges,
    (select count(*)::int from ${s}.batches) as batches`);
  return r!;
};

describe("flows", () => {
  it("runs a fan-out and a fan-in in order; a child reads its parents' results", async () => {
    const ends = new Map<string, number>();
    const starts = new Map<string, number>();
    let seq = 0;
    let seen: unknown;
    const w = db.worker({
      queues: ["fan"],
      tasks: {
        step: async (p: { n: string }) => {
          starts.set(p.n, ++seq);
          ends.set(p.n, ++seq);
          return { made: p.n };
        },
        notify: async (_p, ctx) => {
          starts.set("notify", ++seq);
          seen = await ctx.parents();
          return "sent";
        },
      },
    });
    const jobs = await queue.enqueueFlow([
      { name: "notify", task: "notify", queue: "fan", parents: ["small", "medium", "large"] },
      { name: "resize", task: "step", queue: "fan", payload: { n: "resize" } },
      { name: "small", task: "step", queue: "fan", payload: { n: "small" }, parents: ["resize"] },
      { name: "medium", task: "step", queue: "fan", payload: { n: "medium" }, parents: ["resize"] },
      { name: "large", task: "step", queue: "fan", payload: { n: "large" }, parents: ["resize"] },
    ]);
    // input order kept, whatever order they were inserted in
    expect(jobs.map((j) => [j.name, j.status])).toEqual([
      ["notify", "pending"], ["resize", "queued"], ["small", "pending"], ["medium", "pending"], ["large", "pending"],
    ]);
    const done = w.waitFor("job:completed", (e) => e.job.id === jobs[0]!.id, deadline());
    await w.start();
    await done;
    for (const n of ["small", "medium", "large"]) expect(starts.get(n)!).toBeGreaterThan(ends.get("resize")!);
    for (const n of ["small", "medium", "large"]) expect(starts.get("notify")!).toBeGreaterThan(ends.get(n)!);
    expect(seen).toEqual(
      ["small", "medium", "large"].map((n) => ({ id: jobs.find((j) => j.name === n)!.id, task: "step", status: "completed", result: { made: n } })),
    );
    expect(await statusOf(jobs.map((j) => j.id))).toEqual(["completed", "completed", "completed", "completed", "completed"]);
  });

  it("wakes a worker for the roots at enqueue and for each child at its parents' end: no sweep needed", async () => {
    // the sweep is a minute away: only notifications can start these within the deadline
    const w = db.worker({ queues: ["woken"], pollIntervalMs: 60_000, tasks: { t: async () => "ok" } });
    await w.start();
    // the first sweep at start has passed: the worker now waits on LISTEN
    const jobs = await queue.enqueueFlow([
      { name: "a", task: "t", queue: "woken" },
      { name: "b", task: "t", queue: "woken", parents: ["a"] },
      { name: "c", task: "t", queue: "woken", parents: ["b"] },
    ]);
    const done = await w.waitFor("job:completed", (e) => e.job.id === jobs[2]!.id, deadline(10_000));
    expect(done.job.id).toBe(jobs[2]!.id);
  });

  it("inserts the whole graph in the caller's transaction, or nothing when it rolls back", async () => {
    const before = await counts();
    await expect(
      queue.sql.begin(async (tx) => {
        await queue.enqueueFlow([{ name: "a", task: "t", queue: "tx" }, { name: "b", task: "t", queue: "tx", parents: ["a"] }], { tx });
        throw new Error("roll back");
      }),
    ).rejects.toThrow("roll back");
    expect(await counts()).toEqual(before);
    const kept = await queue.sql.begin((tx) =>
      queue.enqueueFlow([
        { name: "a", task: "t", queue: "tx", payload: { x: [1] }, priority: 3, delayMs: 5000, maxAttempts: 4, timeoutMs: 900, group: "g", meta: { m: "1" } },
        { name: "b", task: "t", queue: "tx", parents: ["a"] },
      ], { tx }),
    );
    expect(await statusOf(kept.map((j) => j.id))).toEqual(["queued", "pending"]);
    // what enqueueFlow returns is what was stored
    for (const job of kept) {
      const { name, deduplicated, ...returned } = job;
      expect(await queue.getJob(job.id)).toEqual(returned);
    }
  });

  it("refuses bad graphs with a typed error and writes nothing", async () => {
    const before = await counts();
    const refused = async (specs: unknown, code: string, reason?: string) => {
      const error = await queue.enqueueFlow(specs as never).then(() => null, (e: unknown) => e);
      expect(error).toBeInstanceOf(PgPulseError);
      expect((error as PgPulseError).code).toBe(code);
      if (reason) expect((error as PgPulseError).details).toMatchObject({ reason });
      return error as PgPulseError;
    };
    const cycle = await refused(
      [{ name: "a", task: "t", parents: ["c"] }, { name: "b", task: "t", parents: ["a"] }, { name: "c", task: "t", parents: ["b"] }, { name: "d", task: "t" }],
      "INVALID_GRAPH", "cycle",
    );
    expect(cycle.message).toMatch(/cycle: ([abc]) -> ([abc]) -> ([abc]) -> \1/);
    await refused([{ name: "a", task: "t", parents: ["a"] }], "INVALID_GRAPH", "cycle");
    await refused([{ name: "a", task: "t", parents: ["nope"] }], "INVALID_GRAPH", "unknown_parent");
    await refused([{ name: "a", task: "t" }, { name: "a", task: "t" }], "INVALID_GRAPH", "duplicate_name");
    await refused([{ task: "t" }], "INVALID_GRAPH", "name");
    await refused([{ name: "a", task: "t" }, { name: "b", task: "t", parents: [{ name: "a", onFailure: "explode" }] }], "INVALID_GRAPH", "mode");
    await refused([{ name: "a", task: "t", key: "k" }], "INVALID_INPUT");
    await refused([{ name: "a", task: "" }], "INVALID_INPUT");
    await refused(Array.from({ length: MAX_FLOW_JOBS + 1 }, (_, i) => ({ name: `j${i}`, task: "t" })), "GRAPH_TOO_LARGE");
    // the database checks too: a parent must come before its child
    await expect(sql.unsafe(`select * from ${s}.enqueue_flow('[{"task":"a","parents":[[1]]},{"task":"b"}]')`)).rejects.toMatchObject({ code: "22023" });
    await expect(sql.unsafe(`select * from ${s}.enqueue_flow('[{"task":"a","parents":[[0,"later"]]}]')`)).rejects.toMatchObject({ code: "22023" });
    expect(await counts()).toEqual(before);
  });

  it("applies each failure mode, and the choice carries down the graph", async () => {
    const ran: string[] = [];
    const w = db.worker({
      queues: ["modes"],
      tasks: {
        boom: async () => {
          throw new PermanentError("no");
        },
        ok: async (p: { n: string }) => void ran.push(p.n),
      },
    });
    const jobs = await queue.enqueueFlow([
      { name: "parent", task: "boom", queue: "modes" },
      { name: "failing", task: "ok", queue: "modes", payload: { n: "failing" }, parents: ["parent"] },
      { name: "cancelling", task: "ok", queue: "modes", payload: { n: "cancelling" }, parents: [{ name: "parent", onFailure: "cancel" }] },
      { name: "running", task: "ok", queue: "modes", payload: { n: "running" }, parents: ["parent"], onParentFailure: "run" },
      { name: "grandchild", task: "ok", queue: "modes", payload: { n: "grandchild" }, parents: ["failing"], onParentFailure: "run" },
      { name: "after-cancel", task: "ok", queue: "modes", payload: { n: "after-cancel" }, parents: ["cancelling"] },
    ]);
    const ranAnyway = w.waitFor("job:completed", (e) => e.job.id === jobs[3]!.id, deadline());
    const ranGrandchild = w.waitFor("job:completed", (e) => e.job.id === jobs[4]!.id, deadline());
    await w.start();
    await Promise.all([ranAnyway, ranGrandchild]);
    expect(await statusOf(jobs.map((j) => j.id))).toEqual(["failed", "failed", "cancelled", "completed", "completed", "failed"]);
    expect(ran.sort()).toEqual(["grandchild", "running"]);
    const failing = (await queue.getJob(jobs[1]!.id))!;
    expect(failing.errors.at(-1)).toMatchObject({ name: "ParentFailed", parent: jobs[0]!.id });
    expect(failing.attempts).toBe(0);
    const afterCancel = (await queue.getJob(jobs[5]!.id))!;
    expect(afterCancel.errors.at(-1)).toMatchObject({ name: "ParentCancelled", parent: jobs[2]!.id });
  });

  it("a cancelled job ends its children, down the graph", async () => {
    const jobs = await queue.enqueueFlow([
      { name: "a", task: "t", queue: "cancel-down", delayMs: 3_600_000 },
      { name: "b", task: "t", queue: "cancel-down", parents: ["a"] },
      { name: "c", task: "t", queue: "cancel-down", parents: ["b"], onParentFailure: "cancel" },
      { name: "d", task: "t", queue: "cancel-down", parents: ["c"] },
    ]);
    await queue.cancel(jobs[1]!.id);
    expect(await statusOf(jobs.map((j) => j.id))).toEqual(["queued", "cancelled", "cancelled", "failed"]);
  });

  it("retrying a failed parent resumes the graph it ended", async () => {
    let fail = true;
    const w = db.worker({
      queues: ["resume"],
      tasks: {
        flaky: async () => {
          if (fail) throw new PermanentError("not yet");
          return "fine";
        },
        ok: async () => "ok",
      },
    });
    const jobs = await queue.enqueueFlow([
      { name: "p", task: "flaky", queue: "resume" },
      { name: "c", task: "ok", queue: "resume", parents: ["p"] },
      { name: "g", task: "ok", queue: "resume", parents: ["c"] },
    ]);
    const failed = w.waitFor("job:failed", (e) => e.job.id === jobs[0]!.id, deadline());
    await w.start();
    await failed;
    await until(async () => (await statusOf(jobs.map((j) => j.id))).join() === "failed,failed,failed");
    // the child is not retried on its own: its parent is
    const refused = await queue.retry(jobs[1]!.id).then(() => null, (e: unknown) => e as PgPulseError);
    expect(refused).toMatchObject({ code: "INVALID_TRANSITION", details: { reason: "parent", parent: jobs[0]!.id } });
    fail = false;
    const done = w.waitFor("job:completed", (e) => e.job.id === jobs[2]!.id, deadline());
    await queue.retry(jobs[0]!.id);
    await done;
    expect(await statusOf(jobs.map((j) => j.id))).toEqual(["completed", "completed", "completed"]);
  });

  it("a retried parent's children wait again for every parent that is no longer ended, whatever order they come back in", async () => {
    // a -> b (fail), a -> c (cancel), b -> d (fail), c -> d (run), d -> e
    const [a, b, c, d, e] = (await queue.enqueueFlow([
      { name: "a", task: "t", queue: "resume-order" },
      { name: "b", task: "t", queue: "resume-order", parents: ["a"] },
      { name: "c", task: "t", queue: "resume-order", parents: [{ name: "a", onFailure: "cancel" }] },
      { name: "d", task: "t", queue: "resume-order", parents: ["b", { name: "c", onFailure: "run" }] },
      { name: "e", task: "t", queue: "resume-order", parents: ["d"] },
    ])).map((j) => j.id) as [string, string, string, string, string];
    const set = (id: string, status: string) =>
      sql.unsafe(`update ${s}.jobs set status = $2::text::${s}.job_status, finished_at = case when $2 in ('completed', 'failed') then now() end where id = $1`, [id, status]);
    await set(a, "failed");
    expect(await statusOf([a, b, c, d, e])).toEqual(["failed", "failed", "cancelled", "failed", "failed"]);
    await set(a, "queued");
    expect(await statusOf([a, b, c, d, e])).toEqual(["queued", "pending", "pending", "pending", "pending"]);
    await set(a, "completed");
    await set(b, "completed");
    // d still waits for c, which its cancellation had let go on before the retry
    expect(await statusOf([c, d])).toEqual(["queued", "pending"]);
    await set(c, "completed");
    expect(await statusOf([d, e])).toEqual(["queued", "pending"]);
  });

  it("settles a chain of 500 in one statement when its root fails (no recursion)", async () => {
    const specs = Array.from({ length: 500 }, (_, i) => ({ name: `s${i}`, task: "t", queue: "chain", ...(i > 0 ? { parents: [`s${i - 1}`] } : {}) }));
    const jobs = await queue.enqueueFlow(specs);
    await sql.unsafe(`update ${s}.jobs set status = 'failed', finished_at = now() where id = $1`, [jobs[0]!.id]);
    const [r] = await sql.unsafe(`select count(*) filter (where status = 'failed')::int as failed, count(*)::int as n from ${s}.jobs where queue = 'chain'`);
    expect(r).toEqual({ failed: 500, n: 500 });
  });

  it("a worker lost mid-graph strands nothing: the reaper gives its job back and the graph goes on", async () => {
    const jobs = await queue.enqueueFlow([
      { name: "a", task: "ok", queue: "lost" },
      { name: "b", task: "ok", queue: "lost", parents: ["a"] },
    ]);
    // a worker that claims the first job and dies: its heartbeat is old and it never ends the job
    await sql.unsafe(`insert into ${s}.workers (id, queues, tasks, concurrency, heartbeat_at) values ('dead', '{lost}', '{ok}', 1, now())`);
    const claimed = await queue.db.jobClaim({ queues: ["lost"], tasks: ["ok"], limit: 1, ahead: 0, workerId: "dead", now: null });
    expect(claimed.jobs.map((j) => j.id)).toEqual([jobs[0]!.id]);
    await sql.unsafe(`update ${s}.workers set heartbeat_at = now() - interval '1 hour' where id = 'dead'`);
    const w = db.worker({ queues: ["lost"], staleAfterMs: 1000, heartbeatIntervalMs: 200, reaperIntervalMs: 100, tasks: { ok: async () => "ok" } });
    const done = w.waitFor("job:completed", (e) => e.job.id === jobs[1]!.id, deadline());
    await w.start();
    await done;
    const a = (await queue.getJob(jobs[0]!.id))!;
    expect(a).toMatchObject({ status: "completed", attempts: 2 });
  });

  it("four workers ending parents of the same children at once strand nothing", async () => {
    // 40 groups of 50 parents, each group the parents of 3 children: ends of one child's
    // parents are written by different workers at the same moment.
    const specs = [];
    for (let g = 0; g < 40; g++) {
      const parents = Array.from({ length: 50 }, (_, i) => `g${g}p${i}`);
      specs.push(...parents.map((name) => ({ name, task: "ok", queue: "contended" })));
      for (let c = 0; c < 3; c++) specs.push({ name: `g${g}c${c}`, task: "ok", queue: "contended", parents });
    }
    const jobs = await queue.enqueueFlow(specs);
    const workers = Array.from({ length: 4 }, () => db.worker({ queues: ["contended"], concurrency: 8, tasks: { ok: async () => "ok" } }));
    await Promise.all(workers.map((w) => w.start()));
    await until(async () => {
      const [r] = await sql.unsafe(`select count(*) filter (where status = 'completed')::int as n from ${s}.jobs where queue = 'contended'`);
      return r!.n === jobs.length;
    }, 60_000, 50);
    const [left] = await sql.unsafe(`select count(*)::int as n from ${s}.job_deps d join ${s}.jobs c on c.id = d.child_id
      where c.queue = 'contended' and d.state <> 'd'`);
    expect(left!.n).toBe(0);
  });

  it("prune keeps a parent while a child still waits for it", async () => {
    const jobs = await queue.enqueueFlow([
      { name: "a", task: "t", queue: "prune" },
      { name: "b", task: "t", queue: "prune" },
      { name: "c", task: "t", queue: "prune", parents: ["a", "b"] },
    ]);
    await sql.unsafe(`update ${s}.jobs set status = 'completed', finished_at = now() - interval '30 days' where id = $1`, [jobs[0]!.id]);
    await queue.prune({ completedMs: 1000, failedMs: 1000 });
    expect(await statusOf([jobs[0]!.id])).toEqual(["completed"]);
    await sql.unsafe(`update ${s}.jobs set status = 'completed', finished_at = now() - interval '30 days' where id = $1`, [jobs[1]!.id]);
    await sql.unsafe(`update ${s}.jobs set status = 'completed', finished_at = now() - interval '30 days' where id = $1`, [jobs[2]!.id]);
    await queue.prune({ completedMs: 1000, failedMs: 1000 });
    expect(await statusOf(jobs.map((j) => j.id))).toEqual([undefined, undefined, undefined]);
    const [edges] = await sql.unsafe(`select count(*)::int as n from ${s}.job_deps where child_id = $1`, [jobs[2]!.id]);
    expect(edges!.n).toBe(0);
  });

  it("getGraph returns the connected jobs and their edges", async () => {
    const jobs = await queue.enqueueFlow([
      { name: "a", task: "t", queue: "graph", delayMs: 3_600_000 },
      { name: "b", task: "t", queue: "graph", parents: ["a"] },
      { name: "c", task: "t", queue: "graph", parents: [{ name: "a", onFailure: "run" }, "b"] },
    ]);
    const g = (await queue.getGraph(jobs[2]!.id))!;
    expect(g.nodes.map((n) => n.id)).toEqual(jobs.map((j) => j.id));
    expect(g.edges).toEqual([
      { parent: jobs[0]!.id, child: jobs[1]!.id, mode: "fail", state: "waiting" },
      { parent: jobs[0]!.id, child: jobs[2]!.id, mode: "run", state: "waiting" },
      { parent: jobs[1]!.id, child: jobs[2]!.id, mode: "fail", state: "waiting" },
    ]);
    expect(g.truncated).toBe(false);
    expect((await queue.getGraph(jobs[0]!.id, { limit: 2 }))!.truncated).toBe(true);
    expect(await queue.getGraph("999999999")).toBeNull();
  });
});

describe("batches", () => {
  it("runs the failure callback at the first failure, cancels the success callback, and runs complete at the end", async () => {
    const hold = gate();
    const w = db.worker({
      queues: ["batch"],
      tasks: {
        item: async (p: { n: number }) => {
          if (p.n === 0) throw new PermanentError("bad item");
          await hold.promise;
          return p.n;
        },
        onDone: async (_p, ctx) => (await ctx.parents()).length,
        onFail: async () => "alerted",
        onSuccess: async () => "never",
      },
    });
    const batch = await queue.enqueueBatch(
      Array.from({ length: 4 }, (_, n) => ({ task: "item", queue: "batch", payload: { n } })),
      { callbacks: { complete: { task: "onDone", queue: "batch" }, failure: { task: "onFail", queue: "batch" }, success: { task: "onSuccess", queue: "batch" } } },
    );
    expect(batch.jobs).toHaveLength(4);
    expect(batch.jobs.every((j) => j.batchId === batch.id)).toBe(true);
    const alerted = w.waitFor("job:completed", (e) => e.job.id === batch.callbacks.failure!.id, deadline());
    await w.start();
    await alerted;
    // the failure callback ran while the other items still ran
    expect((await queue.getBatch(batch.id))!).toMatchObject({ state: "running", size: 4, counts: { failed: 1, running: 3 } });
    expect(await statusOf([batch.callbacks.success!.id, batch.callbacks.complete!.id])).toEqual(["cancelled", "pending"]);
    const finished = w.waitFor("job:completed", (e) => e.job.id === batch.callbacks.complete!.id, deadline());
    hold.open();
    expect((await finished).result).toBe(4);
    expect((await queue.getBatch(batch.id))!).toMatchObject({
      state: "failed",
      counts: { completed: 3, failed: 1, pending: 0, queued: 0, running: 0, cancelled: 0 },
      callbacks: { complete: batch.callbacks.complete!.id, failure: batch.callbacks.failure!.id, success: batch.callbacks.success!.id },
    });
  });

  it("runs the success callback when all completed, and cancels the failure callback", async () => {
    const w = db.worker({ queues: ["batch-ok"], tasks: { item: async () => "ok", yay: async () => "yay", nay: async () => "nay" } });
    const batch = await queue.enqueueBatch([{ task: "item", queue: "batch-ok" }, { task: "item", queue: "batch-ok" }], {
      callbacks: { success: { task: "yay", queue: "batch-ok" }, failure: { task: "nay", queue: "batch-ok" } },
    });
    const done = w.waitFor("job:completed", (e) => e.job.id === batch.callbacks.success!.id, deadline());
    await w.start();
    await done;
    await until(async () => (await statusOf([batch.callbacks.failure!.id]))[0] === "cancelled");
    expect((await queue.getJob(batch.callbacks.failure!.id))!.errors.at(-1)).toMatchObject({ name: "ParentsCompleted" });
    expect((await queue.getBatch(batch.id))!).toMatchObject({ state: "completed", counts: { completed: 2 } });
  });

  it("refuses bad batches and writes nothing", async () => {
    const before = await counts();
    await expect(queue.enqueueBatch([])).rejects.toMatchObject({ code: "INVALID_INPUT" });
    await expect(queue.enqueueBatch([{ task: "t" }], { callbacks: { later: { task: "x" } } as never })).rejects.toMatchObject({ code: "INVALID_INPUT" });
    await expect(queue.enqueueBatch([{ task: "t", name: "x" } as never])).rejects.toMatchObject({ code: "INVALID_INPUT" });
    await expect(queue.enqueueBatch([{ task: "t" }], { callbacks: { complete: { task: "" } } })).rejects.toMatchObject({ code: "INVALID_INPUT" });
    expect(await counts()).toEqual(before);
    expect(await queue.getBatch("123456789")).toBeNull();
  });
});

describe("retrying a graph by filter", () => {
  const set = (id: string, status: string) =>
    sql.unsafe(`update ${s}.jobs set status = $2::text::${s}.job_status,
      finished_at = case when $2 in ('completed', 'failed', 'cancelled') then now() end where id = $1`, [id, status]);

  it("retryJobs of a failed parent and its failed child: the child waits for the parent, as retrying one then the other does", async () => {
    const ids = async (q: string) => (await queue.enqueueFlow([
      { name: "a", task: "t", queue: q }, { name: "c", task: "t", queue: q, parents: [{ name: "a", onFailure: "run" }] },
    ])).map((j) => j.id) as [string, string];
    // one by one
    const [a1, c1] = await ids("retry-one");
    await set(a1, "failed"); // (c's edge runs it anyway: it is queued)
    await set(c1, "failed");
    await queue.retry(a1);
    await queue.retry(c1);
    expect(await statusOf([a1, c1])).toEqual(["queued", "pending"]);
    // together, in one statement
    const [a, c] = await ids("retry-together");
    await set(a, "failed");
    await set(c, "failed");
    expect((await queue.retryJobs({ queue: "retry-together", status: "failed" })).changed).toBe(2);
    expect(await statusOf([a, c])).toEqual(["queued", "pending"]);
    // and c runs once a has ended
    await set(a, "completed");
    expect(await statusOf([c])).toEqual(["queued"]);
  });
});

describe("batches and retention", () => {
  it("prunes a batch's jobs together: a failed job past its retention waits for the others, so the batch never reads as completed", async () => {
    const batch = await queue.enqueueBatch([{ task: "t", queue: "b-prune" }, { task: "t", queue: "b-prune" }]);
    const [failed, done] = batch.jobs.map((j) => j.id) as [string, string];
    // one failed two hours ago, the other completed an hour ago
    await sql.unsafe(`update ${s}.jobs set status = 'failed', finished_at = now() - interval '2 hours' where id = $1`, [failed]);
    await sql.unsafe(`update ${s}.jobs set status = 'completed', finished_at = now() - interval '1 hour' where id = $1`, [done]);
    // failed jobs are kept an hour and a half, completed ones a day: the completed one holds the failed one
    expect(await queue.prune({ completedMs: 86_400_000, failedMs: 5_400_000 })).toBe(0);
    expect(await queue.getBatch(batch.id)).toMatchObject({ state: "failed", counts: { failed: 1, completed: 1 } });
    // once every job of it is past retention, they go together, and the batch with them
    expect(await queue.prune({ completedMs: 1_800_000, failedMs: 5_400_000 })).toBe(2);
    expect(await queue.getBatch(batch.id)).toBeNull();
  });
});

describe("job logs and watch", () => {
  it("a follower sees the count of dropped lines as it finally stands, not only as it first read it", async () => {
    const seenDropped = gate();
    const w = db.worker({
      queues: ["dropped"],
      logIntervalMs: 5,
      logMaxLines: 2,
      tasks: {
        t: async (_p, ctx) => {
          for (let i = 0; i < 3; i++) ctx.log(`early ${i}`);
          await seenDropped.promise;
          for (let i = 0; i < 10; i++) ctx.log(`late ${i}`);
          return "ok";
        },
      },
    });
    const job = await queue.enqueue("t", {}, { queue: "dropped" });
    const events: JobEvent[] = [];
    const watching = (async () => {
      for await (const e of queue.watch(job.id, { signal: deadline() })) {
        events.push(e);
        if (e.logs.some((l) => l.level === "dropped")) seenDropped.open();
      }
    })();
    await w.start();
    await watching;
    const stored = await queue.getJobLogs(job.id);
    const watched = events.flatMap((e) => e.logs);
    const shown = (l: { level: string; message: string; fields: unknown }) => (l.level === "dropped" ? l.fields : l.message);
    expect(stored.map(shown)).toEqual(["early 0", "early 1", { dropped: 11 }]);
    // the lines once each, and the count each time it changed, the last as stored
    expect(watched.map(shown)).toEqual(["early 0", "early 1", { dropped: 1 }, { dropped: 11 }]);
  });

  it("keeps a job's lines in order across attempts, with levels and fields", async () => {
    const w = db.worker({
      queues: ["logs"],
      logIntervalMs: 5,
      tasks: {
        chatty: async (_p, ctx) => {
          ctx.log(`attempt ${ctx.job.attempt} begins`);
          ctx.log.warn("careful", { attempt: ctx.job.attempt });
          if (ctx.job.attempt === 1) throw new Error("first try fails");
          ctx.log.error("done", { ok: true });
          return "ok";
        },
      },
    });
    const job = await queue.enqueue("chatty", {}, { queue: "logs", maxAttempts: 2 });
    const done = w.waitFor("job:completed", (e) => e.job.id === job.id, deadline());
    await w.start();
    // the retry backoff is 1 s at the first attempt by default
    await done;
    const lines = await queue.getJobLogs(job.id);
    expect(lines.map((l) => [l.seq, l.attempt, l.level, l.message, l.fields])).toEqual([
      [1, 1, "info", "attempt 1 begins", null],
      [2, 1, "warn", "careful", { attempt: 1 }],
      [3, 2, "info", "attempt 2 begins", null],
      [4, 2, "warn", "careful", { attempt: 2 }],
      [5, 2, "error", "done", { ok: true }],
    ]);
    expect(await queue.getJobLogs(job.id, { after: 3 })).toHaveLength(2);
    const withLogs = await queue.getJob(job.id, { logs: true });
    expect(withLogs!.logs.map((l) => l.message)).toEqual(lines.map((l) => l.message));
    expect(await queue.getJob(job.id)).not.toHaveProperty("logs");
  });

  it("caps lines and bytes per job, and says how many were dropped", async () => {
    const w = db.worker({
      queues: ["log-caps"],
      logIntervalMs: 5,
      logMaxLines: 5,
      logMaxBytes: 200,
      tasks: {
        flood: async (p: { big: boolean }, ctx) => {
          for (let i = 0; i < 50; i++) ctx.log(p.big ? `line ${i} ${"x".repeat(60)}` : `line ${i}`);
        },
      },
    });
    const lines = await queue.enqueue("flood", { big: false }, { queue: "log-caps" });
    const bytes = await queue.enqueue("flood", { big: true }, { queue: "log-caps" });
    const done = Promise.all([lines, bytes].map((j) => w.waitFor("job:completed", (e) => e.job.id === j.id, deadline())));
    await w.start();
    await done;
    const byLines = await queue.getJobLogs(lines.id);
    expect(byLines.map((l) => l.message)).toEqual(["line 0", "line 1", "line 2", "line 3", "line 4", expect.stringMatching(/^45 lines dropped/)]);
    expect(byLines.at(-1)).toMatchObject({ level: "dropped", fields: { dropped: 45 } });
    const byBytes = await queue.getJobLogs(bytes.id);
    // 67 or 68 bytes a line: 2 fit in 200
    expect(byBytes.map((l) => l.level)).toEqual(["info", "info", "dropped"]);
    expect(byBytes.at(-1)!.fields).toEqual({ dropped: 48 });
  });

  it("watch() follows a job through progress and logs until it ends", async () => {
    const step = gate();
    const w = db.worker({
      queues: ["watch"],
      progressIntervalMs: 10,
      logIntervalMs: 5,
      tasks: {
        slow: async (_p, ctx) => {
          ctx.progress(50);
          ctx.log("half way");
          await step.promise;
          ctx.log("finishing");
          return { ok: 1 };
        },
      },
    });
    const job = await queue.enqueue("slow", {}, { queue: "watch" });
    const events: JobEvent[] = [];
    const watching = (async () => {
      for await (const e of queue.watch(job.id, { signal: deadline() })) {
        events.push(e);
        // the handler goes on once the watcher has seen its progress and its first line
        if (events.some((x) => x.job.progress === 50) && events.some((x) => x.logs.some((l) => l.message === "half way"))) step.open();
      }
    })();
    await w.start();
    await watching;
    expect(events[0]!.job.status).toBe("queued");
    expect(events.at(-1)!.job).toMatchObject({ status: "completed", result: { ok: 1 } });
    expect(events.flatMap((e) => e.logs.map((l) => l.message))).toEqual(["half way", "finishing"]);
    await expect(async () => {
      for await (const _ of queue.watch("987654321")) break;
    }).rejects.toMatchObject({ code: "NOT_FOUND" });
  });
});

describe("flows under concurrency and from unusual paths", () => {
  // (started at once: a postgres.js query runs when awaited, and the concurrency tests hold it)
  const set = (id: string, status: string, on: postgres.Sql | postgres.TransactionSql = sql) =>
    on.unsafe(`update ${s}.jobs set status = $2::text::${s}.job_status,
      finished_at = case when $2 in ('completed', 'failed', 'cancelled') then now() end where id = $1`, [id, status]).execute();
  const flow = async (queueName: string, specs: Parameters<typeof queue.enqueueFlow>[0]) =>
    (await queue.enqueueFlow(specs.map((spec) => ({ ...spec, queue: queueName })))).map((j) => j.id);

  it("a retry of one failed parent racing the failure of another leaves the child failed, not pending for ever", async () => {
    const [p1, p2, c] = (await flow("race", [
      { name: "p1", task: "t" }, { name: "p2", task: "t" }, { name: "c", task: "t", parents: ["p1", "p2"] },
    ])) as [string, string, string];
    await set(p1, "failed");
    expect(await statusOf([c])).toEqual(["failed"]);
    const hold = gate();
    const retried = gate();
    // T1: retries p1 (its children go back to pending) and holds its transaction open
    const t1 = sql.begin(async (tx) => {
      await queue.retry(p1, { tx });
      retried.open();
      await hold.promise;
    });
    await retried.promise;
    // T2: p2 fails meanwhile; its settling waits for T1's lock on c
    const other = postgres(DATABASE_URL, { onnotice: () => {}, max: 1 });
    try {
      const t2 = set(p2, "failed", other);
      await untilWaitingOnLock(sql, `update ${s}.jobs set status = $2%`);
      hold.open();
      await Promise.all([t1, t2]);
    } finally {
      await other.end();
    }
    // c was put back by T1, then ended by p2's failure, which T2 saw once T1 committed
    expect(await statusOf([p1, p2, c])).toEqual(["queued", "failed", "failed"]);
    expect((await queue.retry(c).catch((e: PgPulseError) => e)) as PgPulseError).toMatchObject({ details: { parent: p2 } });
    await queue.retry(p2);
    await set(p1, "completed");
    await set(p2, "completed");
    expect(await statusOf([c])).toEqual(["queued"]);
  });

  it("two statements ending parents of the same children in opposite orders do not deadlock", async () => {
    // x waits for a and d; y waits for b and c. T1 completes a and fails b, T2 completes c and
    // fails d: each settles one child through a completion and the other through a failure.
    const [a, b, c2, d, x, y] = (await flow("no-deadlock", [
      { name: "a", task: "t" }, { name: "b", task: "t" }, { name: "c", task: "t" }, { name: "d", task: "t" },
      { name: "x", task: "t", parents: ["a", "d"] }, { name: "y", task: "t", parents: ["b", "c"] },
    ])) as [string, string, string, string, string, string];
    const blocker = postgres(DATABASE_URL, { onnotice: () => {}, max: 1 });
    const other = postgres(DATABASE_URL, { onnotice: () => {}, max: 1 });
    try {
      // a third session holds both children so that the two statements reach their children together
      const hold = gate();
      const locked = gate();
      const s3 = blocker.begin(async (tx) => {
        await tx.unsafe(`select 1 from ${s}.jobs where id in ($1, $2) for update`, [x, y]);
        locked.open();
        await hold.promise;
      });
      await locked.promise;
      const end2 = ([done, failed]: string[], on: postgres.Sql) =>
        on.unsafe(`update ${s}.jobs set status = (case when id = $1 then 'completed' else 'failed' end)::text::${s}.job_status,
          finished_at = now() where id in ($1, $2) /* no-deadlock */`, [done!, failed!]).execute();
      const t1 = end2([a, b], sql);
      const t2 = end2([c2, d], other);
      await until(async () => {
        const [r] = await sql.unsafe(`select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and query like '%no-deadlock%'`);
        return r!.n === 2;
      });
      hold.open();
      await Promise.all([s3, t1, t2]);
    } finally {
      await blocker.end();
      await other.end();
    }
    expect(await statusOf([x, y])).toEqual(["failed", "failed"]);
  });

  it("a parent ended from inside a trigger of the application's still settles its children", async () => {
    const [p, c] = (await flow("from-trigger", [
      { name: "p", task: "t", delayMs: 3_600_000 }, { name: "c", task: "t", parents: [{ name: "p", onFailure: "cancel" }] },
    ])) as [string, string];
    await sql.unsafe(`
      create table ${s}.orders (id int primary key, job bigint, state text);
      create function ${s}.cancel_job() returns trigger language plpgsql as $$
      begin
        update ${s}.jobs set status = 'cancelled', finished_at = now() where id = new.job;
        return new;
      end $$;
      create trigger orders_cancel after update on ${s}.orders for each row when (new.state = 'void') execute function ${s}.cancel_job();`).simple();
    await sql.unsafe(`insert into ${s}.orders values (1, $1, 'open')`, [p]);
    await sql.unsafe(`update ${s}.orders set state = 'void' where id = 1`);
    expect(await statusOf([p, c])).toEqual(["cancelled", "cancelled"]);
  });

  it("retrying a child refuses while a parent stands failed, and makes a child wait again for a parent that runs again", async () => {
    // cancelled by hand, then its parent fails: retrying the child names the parent
    const [p, c] = (await flow("retry-child", [{ name: "p", task: "t" }, { name: "c", task: "t", parents: ["p"] }])) as [string, string];
    await queue.cancel(c);
    await set(p, "failed");
    expect((await queue.retry(c).catch((e: PgPulseError) => e)) as PgPulseError).toMatchObject({
      code: "INVALID_TRANSITION", details: { reason: "parent", parent: p },
    });
    expect(await statusOf([c])).toEqual(["cancelled"]);
    // mode run: the child ran after its parent failed, and failed itself; the parent is retried, then the child
    const [q, r] = (await flow("retry-child-run", [
      { name: "q", task: "t" }, { name: "r", task: "t", parents: [{ name: "q", onFailure: "run" }] },
    ])) as [string, string];
    await set(q, "failed");
    expect(await statusOf([r])).toEqual(["queued"]);
    await set(r, "failed");
    await queue.retry(q);
    const again = await queue.retry(r);
    expect(again.status).toBe("pending");
    await set(q, "completed");
    expect(await statusOf([r])).toEqual(["queued"]);
  });

  it("a statement ending thousands of parents of one child settles them in chunks, and the child runs once", async () => {
    const names = Array.from({ length: 2000 }, (_, i) => `p${i}`);
    const ids = await flow("wide", [...names.map((name) => ({ name, task: "t" })), { name: "c", task: "t", parents: names }]);
    await sql.unsafe(`update ${s}.jobs set status = 'completed', finished_at = now() where queue = 'wide' and id <> $1`, [ids.at(-1)!]);
    const [row] = await sql.unsafe(`select status::text, parents_left from ${s}.jobs where id = $1`, [ids.at(-1)!]);
    expect(row).toEqual({ status: "queued", parents_left: 0 });
  });

  it("prune keeps a completed parent while a child has not completed, and takes both sides' edges with the parent", async () => {
    const [p, q, c] = (await flow("prune-both", [
      { name: "p", task: "t" }, { name: "q", task: "t" }, { name: "c", task: "t", parents: ["p", "q"] },
    ])) as [string, string, string];
    await sql.unsafe(`update ${s}.jobs set status = 'completed', finished_at = now() - interval '2 days' where id = $1`, [p]);
    await set(q, "failed");
    await queue.prune({ completedMs: 86_400_000, failedMs: 14 * 86_400_000 });
    expect(await statusOf([p, q, c])).toEqual(["completed", "failed", "failed"]);
    await queue.retry(q);
    await set(q, "completed");
    await sql.unsafe(`update ${s}.jobs set status = 'completed', finished_at = now() - interval '2 days' where id = any($1::text::bigint[])`, [`{${q},${c}}`]);
    await queue.prune({ completedMs: 86_400_000, failedMs: 14 * 86_400_000 });
    expect(await statusOf([p, q, c])).toEqual([undefined, undefined, undefined]);
    const [edges] = await sql.unsafe(`select count(*)::int as n from ${s}.job_deps where parent_id = any($1::text::bigint[])`, [`{${p},${q}}`]);
    expect(edges!.n).toBe(0);
  });
});

describe("job logs under faults", () => {
  it("a line Postgres cannot store fails its handler's call, not the other jobs' lines", async () => {
    const w = db.worker({
      queues: ["log-bad"],
      logIntervalMs: 60_000,
      tasks: {
        bad: async (_p, ctx) => {
          ctx.log("fine before");
          try {
            ctx.log("abc\u0000def");
          } catch (error) {
            ctx.log(`refused: ${(error as PgPulseError).code}`);
          }
          expect(() => ctx.log("x", { n: 1n } as never)).toThrow(PgPulseError);
        },
        good: async (_p, ctx) => ctx.log("good line"),
      },
    });
    const jobs = await queue.enqueueMany([{ task: "bad", queue: "log-bad" }, { task: "good", queue: "log-bad" }]);
    const done = Promise.all(jobs.map((j) => w.waitFor("job:completed", (e) => e.job.id === j.id, deadline())));
    await w.start();
    await done;
    expect((await queue.getJobLogs(jobs[0]!.id)).map((l) => l.message)).toEqual(["fine before", "refused: INVALID_INPUT"]);
    expect((await queue.getJobLogs(jobs[1]!.id)).map((l) => l.message)).toEqual(["good line"]);
  });

  it("two writers appending to one job number their lines one after the other", async () => {
    const job = await queue.enqueue("t", {}, { queue: "log-two" });
    const other = postgres(DATABASE_URL, { onnotice: () => {}, max: 1 });
    try {
      const lines = (attempt: number) => JSON.stringify(Array.from({ length: 50 }, (_, i) => [job.id, attempt, Date.now(), "info", `a${attempt} l${i}`, null]));
      await Promise.all([
        sql.unsafe(`select ${s}.append_logs($1::text::jsonb, 1000, 65536)`, [lines(1)]),
        other.unsafe(`select ${s}.append_logs($1::text::jsonb, 1000, 65536)`, [lines(2)]),
      ]);
    } finally {
      await other.end();
    }
    const got = await queue.getJobLogs(job.id);
    expect(got.map((l) => l.seq)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
  });
});
