import { describe, expect, it } from "vitest";
import { statusesOf, testDb } from "./support/db.ts";

// A batch's failure callback that the completion of every job cancelled, when a job leaves its
// completion by hand: settled as a restart of the job followed by its new end (docs/workflows.md,
// "Moving a job by hand"), so the batch's first failure runs the callback.
const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;
const s = `"${schema}"`;
const statusOf = (ids: string[]) => statusesOf(sql, s, ids);
const set = (id: string, status: string) =>
  sql.unsafe(`update ${s}.jobs set status = $2::text::${s}.job_status,
    finished_at = case when $2 in ('completed', 'failed', 'cancelled') then now() end where id = $1`, [id, status]);

describe("a batch's failure callback after every job completed", () => {
  const batchOfTwo = async (q: string) => {
    const batch = await queue.enqueueBatch(
      [{ task: "t", queue: q, delayMs: 3_600_000 }, { task: "t", queue: q, delayMs: 3_600_000 }],
      { callbacks: { failure: { task: "on-failure", queue: q } } },
    );
    const [a, b] = batch.jobs.map((j) => j.id) as [string, string];
    const f = batch.callbacks.failure!.id;
    await set(a, "completed");
    await set(b, "completed");
    // every job completed: the failure callback is cancelled (ParentsCompleted)
    expect(await statusOf([f])).toEqual(["cancelled"]);
    return { a, b, f };
  };

  it("runs when a completed job is moved to failed (as the first failure of a batch does)", async () => {
    const { a, f } = await batchOfTwo("fcb-move");

    await set(a, "failed");

    // a restart of a then its failure: the batch now has a failed job, so its failure callback runs.
    // Found: it stays cancelled ("every parent completed") while a stands failed, its edge settled.
    expect(await statusOf([f])).toEqual(["queued"]);
  });

  it("runs when a completed job put back by hand then fails", async () => {
    const { a, f } = await batchOfTwo("fcb-restart");

    await set(a, "queued");
    await set(a, "failed");

    expect(await statusOf([f])).toEqual(["queued"]);
  });
});
