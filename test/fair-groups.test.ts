import { describe, expect, it } from "vitest";
import type { Worker } from "../src/index.ts";
import { deadline, gate, testDb, until, untilWaitingOnLock } from "./support/db.ts";

const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;
const s = `"${schema}"`;

type Payload = { g: string | null };
const groupOf = (job: { payload: unknown }) => (job.payload as Payload).g;

/** Resolves when `count` jobs have completed across the workers. */
function completions(workers: Worker[], count: number): Promise<void> {
  let done = 0;
  return new Promise((resolve) => {
    for (const w of workers) w.on("job:completed", () => ++done === count && resolve());
  });
}

/** Jobs of `queueName`, `count` per group, groups in the order given (null: no group). */
function jobs(queueName: string, groups: (string | null)[], count: number) {
  return groups.flatMap((g) =>
    Array.from({ length: count }, () => ({ task: "work", queue: queueName, payload: { g }, ...(g === null ? {} : { group: g }) })),
  );
}

/** A handler that tracks, in this process, how many jobs of each group run at once. */
function tracking() {
  const now = new Map<string, number>();
  const max = new Map<string, number>();
  const handler = async (payload: Payload) => {
    const g = payload.g ?? "(none)";
    const n = (now.get(g) ?? 0) + 1;
    now.set(g, n);
    max.set(g, Math.max(max.get(g) ?? 0, n));
    await new Promise((r) => setImmediate(r)); // the job's own work
    now.set(g, now.get(g)! - 1);
    return null;
  };
  return { handler, max };
}

/** One claim() call, as the worker makes it, in its own transaction (rolled back unless keep). */
async function claimOnce(queues: string[], worker: string, n: number, keep = false) {
  let out: { ids: string[]; xid: string | null } = { ids: [], xid: null };
  await sql
    .begin(async (tx) => {
      const rows = await tx.unsafe(`select id from ${s}.claim($1::text::jsonb, '["work"]'::jsonb, $2, $3)`, [
        JSON.stringify(queues), n, worker,
      ]);
      const [x] = await tx.unsafe(`select pg_current_xact_id_if_assigned()::text as xid`);
      out = { ids: rows.filter((r) => r.id !== null).map((r) => String(r.id)), xid: x!.xid };
      if (!keep) throw new RollBack();
    })
    .catch((e) => {
      if (!(e instanceof RollBack)) throw e;
    });
  return out;
}
class RollBack extends Error {}

async function addWorkerRow(id: string, queues: string[]) {
  await sql.unsafe(`insert into ${s}.workers (id, queues, tasks, concurrency) values ($1, $2, '{work}', 10)`, [id, queues]);
}

async function statuses(queueName: string) {
  const rows = await sql.unsafe(`select status::text, count(*)::int as n from ${s}.jobs where queue = $1 group by 1 order by 1`, [queueName]);
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

describe("groups take turns in a group-limited queue", () => {
  it("a backlog of 1,200 jobs of one group does not hold back another group's first job", async () => {
    await queue.configureQueue("fair", { groupConcurrency: 1 });
    await queue.enqueueMany(jobs("fair", ["A"], 1200));
    await queue.enqueueMany(jobs("fair", ["B"], 5));
    const w = db.worker({ queues: ["fair"], concurrency: 10, tasks: { work: async () => null } });
    const claims: (string | null)[][] = [];
    w.on("worker:claimed", (e) => e.jobs.length && claims.push(e.jobs.map(groupOf)));
    let bDone = 0;
    const allB = new Promise<void>((r) => w.on("job:completed", (e) => groupOf(e.job) === "B" && ++bDone === 5 && r()));
    await w.start();
    await allB;
    await w.stop({ gracefulStopMs: 0 });

    // The first claim saw both groups queued and nothing running: one job of each.
    expect(claims[0]!.sort()).toEqual(["A", "B"]);
    // B's first job started no later than A's second one, and B's five jobs
    // ran while A's backlog was still almost all there.
    const [order] = await sql.unsafe(`
      select (select min(started_at) from ${s}.jobs where queue = 'fair' and group_key = 'B') as b_first,
             (select started_at from ${s}.jobs where queue = 'fair' and group_key = 'A' and started_at is not null
               order by started_at offset 1 limit 1) as a_second,
             (select count(*)::int from ${s}.jobs where queue = 'fair' and group_key = 'A' and status = 'completed') as a_done`);
    expect(order!.b_first.getTime()).toBeLessThanOrEqual(order!.a_second.getTime());
    expect(order!.a_done).toBeLessThan(50);
  });

  it("uses every free slot while some group is below its limit", async () => {
    await queue.configureQueue("spread", { groupConcurrency: 1 });
    const groups = ["A", "B", "C", "D", "E", "F", "G", "H", "I", "J"];
    // A's backlog comes first in claim order, longer than the old claim's look-ahead of
    // 1,000 jobs; every other group has more than a slot's worth
    await queue.enqueueMany(jobs("spread", ["A"], 1100));
    await queue.enqueueMany(jobs("spread", groups.slice(1), 3));
    const release = gate();
    let running = 0;
    const w = db.worker({ queues: ["spread"], concurrency: 10, tasks: { work: async () => (running++, await release.promise, null) } });
    const claims: (string | null)[][] = [];
    w.on("worker:claimed", (e) => e.jobs.length && claims.push(e.jobs.map(groupOf)));
    const ten = completions([w], 10);
    await w.start();
    await until(() => running === 10);
    expect(claims[0]!.sort()).toEqual(groups); // the first claim filled all ten slots, one per group
    const [r] = await sql.unsafe(`select count(*)::int as n, count(distinct group_key)::int as g from ${s}.jobs where queue = 'spread' and status = 'running'`);
    expect(r).toEqual({ n: 10, g: 10 });
    release.open();
    await ten;
    await w.stop({ gracefulStopMs: 0 }); // A's backlog is not needed any more
  });

  it("keeps thousands of groups within their limit, and completes them all", async () => {
    await queue.configureQueue("many", { groupConcurrency: 1 });
    const groups = Array.from({ length: 3000 }, (_, i) => `tenant-${String(i).padStart(4, "0")}`);
    for (let i = 0; i < groups.length; i += 1000) await queue.enqueueMany(jobs("many", groups.slice(i, i + 1000), 2));
    const t = tracking();
    const workers = [1, 2].map(() => db.worker({ queues: ["many"], concurrency: 10, tasks: { work: t.handler } }));
    const all = completions(workers, 6000);
    await Promise.all(workers.map((w) => w.start()));
    await all;
    expect(await statuses("many")).toEqual({ completed: 6000 });
    expect(t.max.size).toBe(3000);
    expect(Math.max(...t.max.values())).toBe(1);
  });

  it("runs the jobs without a group in a group-limited queue, giving them a turn", async () => {
    await queue.configureQueue("mixed", { groupConcurrency: 1 });
    await queue.enqueueMany(jobs("mixed", ["A"], 20));
    await queue.enqueueMany(jobs("mixed", [null], 5));
    const w = db.worker({ queues: ["mixed"], concurrency: 10, tasks: { work: async () => null } });
    const claims: (string | null)[][] = [];
    w.on("worker:claimed", (e) => e.jobs.length && claims.push(e.jobs.map(groupOf)));
    const all = completions([w], 25);
    await w.start();
    await all;
    expect(await statuses("mixed")).toEqual({ completed: 25 });
    // one turn for A (at its limit then), and the jobs without a group, unlimited, take the rest
    expect(claims[0]!.filter((g) => g === "A")).toHaveLength(1);
    expect(claims[0]!.filter((g) => g === null)).toHaveLength(5);
  });

  it("a claim does not walk the backlog: its cost does not grow with the queue's depth", async () => {
    // 200,000 queued jobs in 1,000 groups, inserted directly (the enqueue API is not under test here)
    await queue.configureQueue("deep", { groupConcurrency: 2 });
    await addWorkerRow("deep-worker", ["deep"]);
    await sql.unsafe(`
      insert into ${s}.jobs (queue, task, group_key, run_at)
      select 'deep', 'work', 'g' || lpad((i % 1000)::text, 4, '0'), now() - interval '1 hour' + i * interval '1 ms'
        from generate_series(1, 200000) i`);
    await sql.unsafe(`analyze ${s}.jobs`);
    const buffers = async () => {
      let hit = 0;
      await sql
        .begin(async (tx) => {
          const plan = await tx.unsafe(
            `explain (analyze, buffers, format json) select * from ${s}.claim('["deep"]', '["work"]', 10, 'deep-worker')`,
          );
          const top = (plan[0]!["QUERY PLAN"] as { Plan: Record<string, number> }[])[0]!.Plan;
          hit = top["Shared Hit Blocks"]! + top["Shared Read Blocks"]!;
          throw new RollBack();
        })
        .catch((e) => {
          if (!(e instanceof RollBack)) throw e;
        });
      return hit;
    };
    await buffers(); // warm the function's plans
    const used = await buffers();
    const [size] = await sql.unsafe(`select (pg_relation_size('${s}.jobs') / 8192)::int as pages`);
    // ten groups visited, a few index pages each (measured: about 150 buffers); the heap alone is thousands of pages
    expect(used).toBeLessThan(1000);
    expect(size!.pages).toBeGreaterThan(2000);
  });
});

describe("the lease in the claim", () => {
  it("an empty claim writes nothing: no transaction id, whatever the queue's limits", async () => {
    await addWorkerRow("idle-worker", ["idle-free", "idle-capped", "idle-groups"]);
    await queue.configureQueue("idle-capped", { concurrency: 2 });
    await queue.configureQueue("idle-groups", { groupConcurrency: 1, rateLimit: { max: 5, intervalMs: 1000 } });
    const all = ["idle-free", "idle-capped", "idle-groups"];
    for (let i = 0; i < 20; i++) expect(await claimOnce(all, "idle-worker", 10)).toEqual({ ids: [], xid: null });
    // a job in one of the queues: the claim takes it, and that does write
    const job = await queue.enqueue("work", { g: "x" }, { queue: "idle-groups", group: "x" });
    const got = await claimOnce(all, "idle-worker", 10, true);
    expect(got.ids).toEqual([job.id]);
    expect(got.xid).not.toBeNull();
    expect((await queue.getJob(job.id))!.status).toBe("running");
  });

  it("a worker whose row is gone claims nothing, and the jobs stay queued", async () => {
    await queue.configureQueue("gone-groups", { groupConcurrency: 1 });
    await queue.enqueueMany(jobs("gone-free", ["A"], 3));
    await queue.enqueueMany(jobs("gone-groups", ["A", "B"], 2));
    const got = await claimOnce(["gone-free", "gone-groups"], "never-registered", 10, true);
    expect(got).toEqual({ ids: [], xid: null });
    expect(await statuses("gone-free")).toEqual({ queued: 3 });
    expect(await statuses("gone-groups")).toEqual({ queued: 4 });
  });

  it("a claim whose worker row is deleted while it claims is undone", async () => {
    await queue.configureQueue("reaped-groups", { groupConcurrency: 1 });
    await queue.enqueueMany(jobs("reaped-free", ["A"], 2));
    await queue.enqueueMany(jobs("reaped-groups", ["A", "B"], 2));
    await addWorkerRow("reaped-worker", ["reaped-free", "reaped-groups"]);
    // The reaper deletes the row, and has not committed when the claim runs:
    // the claim sees the row, claims, then waits on the delete for its lease.
    const reaper = await sql.reserve();
    try {
      await reaper.unsafe("begin");
      await reaper.unsafe(`delete from ${s}.workers where id = 'reaped-worker'`);
      const claim = claimOnce(["reaped-free", "reaped-groups"], "reaped-worker", 10, true).then(
        () => null,
        (e: { code?: string; message?: string }) => e,
      );
      await untilWaitingOnLock(sql, `%${schema}%.claim(%`);
      await reaper.unsafe("commit");
      const error = await claim;
      expect(error).toMatchObject({ code: "55000" });
      expect(error!.message).toMatch(/reaped-worker lost its lease/);
    } finally {
      reaper.release();
    }
    expect(await statuses("reaped-free")).toEqual({ queued: 2 });
    expect(await statuses("reaped-groups")).toEqual({ queued: 4 });
  });
});
