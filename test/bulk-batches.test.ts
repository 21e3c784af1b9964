import { describe, expect, it } from "vitest";
import type { BulkResult } from "../src/index.ts";
import { gate, testDb } from "./support/db.ts";

// deleteJobs and batches: a batch's state is read from the jobs it has left, so
// its jobs are deleted together or not at all (src/db/bulk.ts), as the pruner
// does it; skipped ones are counted in reasons.batch.
const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;
const s = `"${schema}"`;

const counts = (r: BulkResult) => ({ matched: r.matched, changed: r.changed, skipped: r.skipped, reasons: r.reasons });
const reasons = (o: Partial<BulkResult["reasons"]> = {}) => ({ key: 0, parent: 0, children: 0, batch: 0, busy: 0, ...o });

/** A batch of jobs in queue `q`, ended as `statuses` say (finished ones now); its id and its jobs' ids. */
async function batchOf(q: string, statuses: string[]): Promise<{ id: string; jobs: string[] }> {
  const batch = await queue.enqueueBatch(statuses.map(() => ({ task: "t", queue: q, delayMs: 3_600_000 })));
  const jobs = batch.jobs.map((j) => j.id);
  await sql.unsafe(
    `update ${s}.jobs j set status = x.status::${s}.job_status,
       finished_at = case when x.status in ('completed', 'failed', 'cancelled') then now() end
      from unnest($1::text::bigint[], $2::text[]) as x(id, status) where j.id = x.id`,
    [`{${jobs.join(",")}}`, `{${statuses.join(",")}}`],
  );
  return { id: batch.id, jobs };
}
const left = async (ids: string[]) =>
  (await sql.unsafe(`select count(*)::int as n from ${s}.jobs where id = any($1::text::bigint[])`, [`{${ids.join(",")}}`]))[0]!.n as number;

describe("deleteJobs and batches", () => {
  it("deleting a failed job of a batch whose other jobs completed skips it: the batch still reads as failed", async () => {
    const b = await batchOf("db-one", ["completed", "failed", "completed"]);
    const dry = await queue.deleteJobs({ queue: "db-one", status: "failed" }, { dryRun: true });
    const r = await queue.deleteJobs({ queue: "db-one", status: "failed" });
    expect(counts(r)).toEqual({ matched: 1, changed: 0, skipped: 1, reasons: reasons({ batch: 1 }) });
    expect(counts(dry)).toEqual(counts(r));
    expect(await left(b.jobs)).toBe(3);
    expect(await queue.getBatch(b.id)).toMatchObject({ state: "failed", counts: { completed: 2, failed: 1 } });
  });

  it("skips a batch's finished jobs while one of its jobs has not finished, and deletes them all once it has", async () => {
    const b = await batchOf("db-live", ["completed", "failed", "running"]);
    const r = await queue.deleteJobs({ queue: "db-live" });
    expect(counts(r)).toEqual({ matched: 2, changed: 0, skipped: 2, reasons: reasons({ batch: 2 }) });
    expect(await queue.getBatch(b.id)).toMatchObject({ state: "running" });
    await sql.unsafe(`update ${s}.jobs set status = 'completed', finished_at = now() where id = $1`, [b.jobs[2]!]);
    const again = await queue.deleteJobs({ queue: "db-live" });
    expect(counts(again)).toEqual({ matched: 3, changed: 3, skipped: 0, reasons: reasons() });
    expect(await queue.getBatch(b.id)).toBeNull();
  });

  it("deletes a batch's jobs in one transaction whatever batchSize, with the jobs enqueued among them", async () => {
    const before = await queue.enqueue("t", {}, { queue: "db-all" });
    const b = await batchOf("db-all", ["completed", "failed", "cancelled", "completed", "completed"]);
    const after = await queue.enqueue("t", {}, { queue: "db-all" });
    const plain = [before.id, after.id];
    await sql.unsafe(`update ${s}.jobs set status = 'completed', finished_at = now() where id = any($1::text::bigint[])`, [`{${plain.join(",")}}`]);
    // after each transaction, the batch is whole or gone
    const seen: Promise<number>[] = [];
    const r = await queue.deleteJobs({ queue: "db-all" }, { batchSize: 2, onProgress: () => void seen.push(left(b.jobs)) });
    expect(counts(r)).toEqual({ matched: 7, changed: 7, skipped: 0, reasons: reasons() });
    // [before, b0] and the rest of b0's batch with them (b1..b4), then [after]
    expect(r.batches).toBe(2);
    expect((await Promise.all(seen)).every((n) => n === 5 || n === 0)).toBe(true);
    expect(await left([...plain, ...b.jobs])).toBe(0);
    expect(await queue.getBatch(b.id)).toBeNull();
  });

  it("batches whose jobs' ids interleave go in one transaction, with the jobs among them", async () => {
    // ids: a b x a b x a b, where a and b are two batches and x jobs of none
    const ids = (await sql.unsafe(
      `insert into ${s}.jobs (task, queue, status, finished_at) select 't', 'db-mix', 'completed', now() from generate_series(1, 8) returning id::text`,
    )).map((r) => r.id as string).sort((x, y) => Number(x) - Number(y));
    const [a, b] = (await sql.unsafe(`insert into ${s}.batches (size) values (3), (3) returning id::text`)).map((r) => r.id as string);
    await sql.unsafe(`update ${s}.jobs set batch_id = $1 where id = any($2::text::bigint[])`, [a!, `{${ids[0]},${ids[3]},${ids[6]}}`]);
    await sql.unsafe(`update ${s}.jobs set batch_id = $1 where id = any($2::text::bigint[])`, [b!, `{${ids[1]},${ids[4]},${ids[7]}}`]);
    const seen: Promise<number>[] = [];
    const r = await queue.deleteJobs({ queue: "db-mix" }, { batchSize: 1, onProgress: () => void seen.push(left(ids)) });
    expect(counts(r)).toEqual({ matched: 8, changed: 8, skipped: 0, reasons: reasons() });
    expect(r.batches).toBe(1);
    expect(await Promise.all(seen)).toEqual([0]);
    expect([await queue.getBatch(a!), await queue.getBatch(b!)]).toEqual([null, null]);
  });

  it("a filter that matches only some of a batch's jobs skips them; one that matches all takes them", async () => {
    const b = await batchOf("db-part", ["completed", "failed"]);
    await sql.unsafe(`update ${s}.jobs set task = 'other' where id = $1`, [b.jobs[0]!]);
    expect(counts(await queue.deleteJobs({ queue: "db-part", task: "t" }))).toEqual({ matched: 1, changed: 0, skipped: 1, reasons: reasons({ batch: 1 }) });
    expect(counts(await queue.deleteJobs({ queue: "db-part" }))).toEqual({ matched: 2, changed: 2, skipped: 0, reasons: reasons() });
    expect(await queue.getBatch(b.id)).toBeNull();
  });

  it("a batch's job that another transaction holds holds the whole batch back: come back to together, or counted busy", async () => {
    const b = await batchOf("db-held", ["completed", "completed", "failed"]);
    const hold = gate();
    const locked = gate();
    const holder = sql.begin(async (tx) => {
      await tx.unsafe(`select 1 from ${s}.jobs where id = $1 for update`, [b.jobs[1]!]);
      locked.open();
      await hold.promise;
    });
    await locked.promise;
    // held throughout: none of the batch goes, each counted busy
    const busy = await queue.deleteJobs({ queue: "db-held" });
    expect(counts(busy)).toEqual({ matched: 3, changed: 0, skipped: 3, reasons: reasons({ busy: 3 }) });
    expect(await left(b.jobs)).toBe(3);
    // held until the first pass is over: the batch is come back to, and goes whole
    const r = await queue.deleteJobs({ queue: "db-held" }, { onProgress: () => hold.open() });
    await holder;
    expect(counts(r)).toEqual({ matched: 3, changed: 3, skipped: 0, reasons: reasons() });
    expect(await queue.getBatch(b.id)).toBeNull();
  });

  it("a batch given back as busy is come back to whole, whatever batchSize: none of it is skipped as batch", async () => {
    // ids: x b x b b x b b, where b are the batch's jobs and x jobs of none
    const ids = (await sql.unsafe(
      `insert into ${s}.jobs (task, queue, status, finished_at) select 't', 'db-back', 'completed', now() from generate_series(1, 8) returning id::text`,
    )).map((r) => r.id as string).sort((x, y) => Number(x) - Number(y));
    const [batch] = (await sql.unsafe(`insert into ${s}.batches (size) values (5) returning id::text`)).map((r) => r.id as string);
    const jobs = [ids[1]!, ids[3]!, ids[4]!, ids[6]!, ids[7]!];
    await sql.unsafe(`update ${s}.jobs set batch_id = $1 where id = any($2::text::bigint[])`, [batch!, `{${jobs.join(",")}}`]);
    const hold = gate();
    const locked = gate();
    const holder = sql.begin(async (tx) => {
      await tx.unsafe(`select 1 from ${s}.jobs where id = $1 for update`, [jobs[2]!]);
      locked.open();
      await hold.promise;
    });
    await locked.promise;
    // the first pass takes the batch with the jobs among it, and gives all five back as busy;
    // the rows come back in slices of two, each batch's jobs in one of them
    const seen: Promise<number>[] = [];
    const r = await queue.deleteJobs({ queue: "db-back" }, {
      batchSize: 2,
      onProgress: () => {
        hold.open();
        seen.push(left(jobs));
      },
    });
    await holder;
    expect(counts(r)).toEqual({ matched: 8, changed: 8, skipped: 0, reasons: reasons() });
    expect((await Promise.all(seen)).every((n) => n === 5 || n === 0)).toBe(true);
    expect(await left(ids)).toBe(0);
    expect(await queue.getBatch(batch!)).toBeNull();
  });

  it("a batch whose callback has not completed keeps its jobs (children), as before", async () => {
    const batch = await queue.enqueueBatch([{ task: "t", queue: "db-cb" }, { task: "t", queue: "db-cb" }], {
      callbacks: { complete: { task: "report", queue: "db-cb-report", delayMs: 3_600_000 } },
    });
    await sql.unsafe(`update ${s}.jobs set status = 'completed', finished_at = now() where batch_id = $1`, [batch.id]);
    const r = await queue.deleteJobs({ queue: "db-cb" });
    expect(counts(r)).toEqual({ matched: 2, changed: 0, skipped: 2, reasons: reasons({ children: 2 }) });
  });
});
