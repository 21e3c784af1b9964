import { beforeEach, describe, expect, it } from "vitest";
import { PRUNE_BATCH } from "../src/maintenance/pruner.ts";
import { gate, testDb } from "./support/db.ts";

// The pruner and batches: a batch's state is read from the jobs it has left, so
// its jobs are pruned in one transaction or not at all, whatever the slice size
// and whoever holds one of them (src/db/prune.ts).
const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;
const s = `"${schema}"`;
const retention = { completedMs: 60_000, failedMs: 60_000 };

// Each deleted job's transaction, written by a trigger of this schema only.
await sql.unsafe(`
  create table ${s}.deleted_by (batch_id bigint, xid bigint);
  create function ${s}.note_delete() returns trigger language plpgsql as $$
  begin
    insert into ${s}.deleted_by values (old.batch_id, txid_current());
    return old;
  end $$;
  create trigger note_delete after delete on ${s}.jobs for each row execute function ${s}.note_delete();`);

/** `n` jobs finished an hour ago in queue `q` (in a new batch when `batch`); their ids in order, and the batch's id. */
async function finished(q: string, n: number, batch: boolean): Promise<{ ids: string[]; batch: string | null }> {
  const [b] = batch ? await sql.unsafe(`insert into ${s}.batches (size) values ($1) returning id::text`, [n]) : [];
  const rows = await sql.unsafe(
    `insert into ${s}.jobs (task, queue, status, finished_at, batch_id)
     select 't', $1, 'completed', now() - interval '1 hour', $2::bigint from generate_series(1, $3::int) returning id::text`,
    [q, (b?.id as string | undefined) ?? null, n],
  );
  return { ids: rows.map((r) => r.id as string).sort((x, y) => Number(x) - Number(y)), batch: (b?.id as string | undefined) ?? null };
}
const left = async (ids: string[]) =>
  (await sql.unsafe(`select count(*)::int as n from ${s}.jobs where id = any($1::text::bigint[])`, [`{${ids.join(",")}}`]))[0]!.n as number;
const transactionsOf = async (batch: string) =>
  (await sql.unsafe(`select count(distinct xid)::int as n from ${s}.deleted_by where batch_id = $1`, [batch]))[0]!.n as number;

/** Holds a row lock on `id` from another connection until the returned release() is called. */
async function holdRow(id: string): Promise<() => Promise<void>> {
  const release = gate();
  const locked = gate();
  const holder = sql.begin(async (tx) => {
    await tx.unsafe(`select 1 from ${s}.jobs where id = $1 for update`, [id]);
    locked.open();
    await release.promise;
  });
  await locked.promise;
  return async () => {
    release.open();
    await holder;
  };
}

describe("prune and batches", () => {
  // prune takes every job of the schema: each test starts from none
  beforeEach(async () => {
    await sql.unsafe(`delete from ${s}.job_deps; delete from ${s}.jobs; delete from ${s}.batches; delete from ${s}.deleted_by`);
  });

  it("prunes a batch larger than a slice in one transaction, across the slice's end", async () => {
    const before = await finished("p-large", PRUNE_BATCH - 10, false);
    const b = await finished("p-large", PRUNE_BATCH + 500, true);
    expect(await queue.prune(retention)).toBe(before.ids.length + b.ids.length);
    expect(await left(b.ids)).toBe(0);
    expect(await transactionsOf(b.batch!)).toBe(1);
    expect(await queue.getBatch(b.batch!)).toBeNull();
  });

  it("leaves a batch whole while another transaction holds one of its jobs, and prunes it all once free", async () => {
    const b = await finished("p-held", 3, true);
    const plain = await finished("p-held", 2, false);
    const release = await holdRow(b.ids[1]!);
    try {
      expect(await queue.prune(retention)).toBe(2);
      expect(await left(b.ids)).toBe(3);
      expect(await queue.getBatch(b.batch!)).toMatchObject({ state: "completed", counts: { completed: 3 } });
    } finally {
      await release();
    }
    expect(await left(plain.ids)).toBe(0);
    expect(await queue.prune(retention)).toBe(3);
    expect(await transactionsOf(b.batch!)).toBe(1);
    expect(await queue.getBatch(b.batch!)).toBeNull();
  });

  it("goes on past a held batch that fills a slice, to the jobs after it", async () => {
    const b = await finished("p-past", PRUNE_BATCH, true);
    const after = await finished("p-past", 10, false);
    const release = await holdRow(b.ids[PRUNE_BATCH - 1]!);
    try {
      expect(await queue.prune(retention)).toBe(10);
      expect(await left(b.ids)).toBe(PRUNE_BATCH);
      expect(await left(after.ids)).toBe(0);
    } finally {
      await release();
    }
    expect(await queue.prune(retention)).toBe(PRUNE_BATCH);
    expect(await transactionsOf(b.batch!)).toBe(1);
  });

  it("keeps every job of a batch while one of them has a child that has not completed", async () => {
    const b = await finished("p-child", 3, true);
    const [child] = await sql.unsafe(`insert into ${s}.jobs (task, queue, status, parents_left) values ('c', 'p-child', 'pending', 1) returning id::text`);
    await sql.unsafe(`insert into ${s}.job_deps (parent_id, child_id) values ($1, $2)`, [b.ids[2]!, child!.id as string]);
    await sql.unsafe(`update ${s}.jobs set has_children = true where id = $1`, [b.ids[2]!]);
    expect(await queue.prune(retention)).toBe(0);
    expect(await left(b.ids)).toBe(3);
    expect(await queue.getBatch(b.batch!)).toMatchObject({ state: "completed", counts: { completed: 3 } });
  });
});
