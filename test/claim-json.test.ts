import { describe, expect, it } from "vitest";
import { testDb } from "./support/db.ts";

// claim_json(), which workers of versions 5 to 7 call: since version 8 it
// gathers claim_rows()'s rows (test/claim-rows.test.ts tests the claim) into the
// one JSON value those workers read. These tests hold it to that shape.
const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;
const s = `"${schema}"`;

type Tuple = [string, string, string, unknown, number, number, number, number | null, string | null, number, number, number | null];

async function addWorker(id: string) {
  await sql.unsafe(`insert into ${s}.workers (id, queues, tasks, concurrency) values ($1, '{}', '{}', 4)`, [id]);
}

/** One claim_json() call in its own transaction; rolled back unless keep. */
async function claim(queues: string[], worker: string, n: number, ahead = 0, keep = true) {
  let out: { jobs: Tuple[] | null; wakeMs: number | null; xid: string | null } = { jobs: null, wakeMs: null, xid: null };
  await sql
    .begin(async (tx) => {
      const [row] = await tx.unsafe(`select * from ${s}.claim_json($1::text::jsonb, '["t"]'::jsonb, $2, $3, null, $4)`, [
        JSON.stringify(queues), n, worker, ahead,
      ]);
      const [x] = await tx.unsafe(`select pg_current_xact_id_if_assigned()::text as xid`);
      out = { jobs: row!.jobs as Tuple[] | null, wakeMs: row!.wake_ms === null ? null : Number(row!.wake_ms), xid: x!.xid };
      if (!keep) throw new RollBack();
    })
    .catch((e) => {
      if (!(e instanceof RollBack)) throw e;
    });
  return out;
}
class RollBack extends Error {}

const statuses = async (queueName: string) =>
  Object.fromEntries(
    (await sql.unsafe(`select status::text, count(*)::int as n from ${s}.jobs where queue = $1 group by 1`, [queueName])).map((r) => [r.status, r.n]),
  );

describe("claim_json()", () => {
  it("claims in claim order, as one JSON array of tuples with times in ms, and starts only the first n - ahead", async () => {
    await addWorker("w-order");
    const low = await queue.enqueue("t", { n: 1 }, { queue: "j-order", priority: 0 });
    const high = await queue.enqueue("t", { n: 2 }, { queue: "j-order", priority: 5 });
    const later = await queue.enqueueMany([3, 4].map((n) => ({ task: "t", payload: { n }, queue: "j-order" })));
    const [clock] = await sql.unsafe(`select extract(epoch from now()) * 1000 as now`);
    const { jobs } = await claim(["j-order"], "w-order", 4, 2);
    expect(jobs!.map((j) => j[0]).sort()).toEqual([high.id, low.id, ...later.map((j) => j.id)].sort());
    const byId = new Map(jobs!.map((j) => [j[0], j]));
    const tuple = byId.get(high.id)!;
    expect(tuple.slice(0, 9)).toEqual([high.id, "t", "j-order", { n: 2 }, 5, 1, 10, null, null]);
    expect(tuple[9]).toBeCloseTo(high.createdAt.getTime(), -1);
    expect(tuple[10]).toBeCloseTo(high.runAt.getTime(), -1);
    // the first two in claim order (high, then low) start now; the other two wait in the worker
    const stored = await sql.unsafe(`select id::text, started_at from ${s}.jobs where queue = 'j-order'`);
    const started = new Set(stored.filter((r) => r.started_at !== null).map((r) => r.id));
    expect(started).toEqual(new Set([high.id, low.id]));
    for (const j of jobs!) {
      if (started.has(j[0])) expect(j[11]).toBeNull();
      else expect(Math.abs(j[11]! - Number(clock!.now))).toBeLessThan(5000);
    }
    expect(await statuses("j-order")).toEqual({ running: 4 });
  });

  it("takes earlier queues first, limited queues through claim() and never ahead, and says when a rate limit lets the next start", async () => {
    await addWorker("w-mixed");
    await queue.configureQueue("j-rated", { rateLimit: { max: 1, intervalMs: 60_000 } });
    await queue.configureQueue("j-capped", { concurrency: 1 });
    await queue.enqueueMany([1, 2].map((n) => ({ task: "t", payload: { n }, queue: "j-rated" })));
    await queue.enqueueMany([1, 2].map((n) => ({ task: "t", payload: { n }, queue: "j-capped" })));
    await queue.enqueueMany([1, 2, 3].map((n) => ({ task: "t", payload: { n }, queue: "j-free" })));
    const { jobs, wakeMs: first } = await claim(["j-rated", "j-capped", "j-free"], "w-mixed", 6, 2);
    const perQueue = (name: string) => jobs!.filter((j) => j[2] === name).length;
    expect([perQueue("j-rated"), perQueue("j-capped"), perQueue("j-free")]).toEqual([1, 1, 3]);
    // the limited queues' jobs started; of the free queue's, n - ahead - 2 = 2 start, 1 waits
    expect(jobs!.filter((j) => j[2] !== "j-free").every((j) => j[11] === null)).toBe(true);
    expect(jobs!.filter((j) => j[2] === "j-free" && j[11] !== null)).toHaveLength(1);
    // fewer than asked, and the rate's window now full: when its next start is allowed (version 12)
    expect(first).toBeGreaterThan(50_000);
    expect(first).toBeLessThanOrEqual(60_000);
    // the rate's one start in the window is spent: the next claim gets nothing from it, and when to come back
    const again = await claim(["j-rated"], "w-mixed", 6, 0);
    expect(again.jobs).toBeNull();
    expect(again.wakeMs).toBeGreaterThan(50_000);
    expect(again.wakeMs).toBeLessThanOrEqual(60_000);
  });

  it("skips a paused queue, and a claim that finds nothing writes nothing", async () => {
    await addWorker("w-idle");
    await queue.enqueue("t", {}, { queue: "j-paused" });
    await queue.pauseQueue("j-paused");
    const out = await claim(["j-paused", "j-empty"], "w-idle", 4, 0, false);
    expect(out).toEqual({ jobs: null, wakeMs: null, xid: null });
    expect(await statuses("j-paused")).toEqual({ queued: 1 });
  });

  it("claims nothing for a worker without a lease", async () => {
    await queue.enqueue("t", {}, { queue: "j-nolease" });
    expect((await claim(["j-nolease"], "w-gone", 4)).jobs).toBeNull();
    expect(await statuses("j-nolease")).toEqual({ queued: 1 });
  });
});
