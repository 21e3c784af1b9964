import { describe, expect, it } from "vitest";
import type { PgPulseError } from "../src/index.ts";
import { statusesOf, testDb } from "./support/db.ts";

// A job with children moved by hand (an UPDATE of its status) from one end
// status to another: its edges are settled as a restart of the job followed by
// its new end would settle them (sql/000017). Children its old end failed or
// cancelled come back and are settled by the new end; children that went on
// (queued, running, completed) are left as they are, as a retry leaves them.
const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;
const s = `"${schema}"`;

const statusOf = (ids: string[]) => statusesOf(sql, s, ids);
/** A flow of jobs of task t, each delayed an hour (no worker runs here): the ids in input order. */
const flow = async (queueName: string, specs: Omit<Parameters<typeof queue.enqueueFlow>[0][number], "task">[]) =>
  (await queue.enqueueFlow(specs.map((spec) => ({ delayMs: 3_600_000, ...spec, task: "t", queue: queueName })))).map((j) => j.id);
/** An operator's UPDATE of one job's status. */
const set = (id: string, status: string) =>
  sql.unsafe(`update ${s}.jobs set status = $2::text::${s}.job_status,
    finished_at = case when $2 in ('completed', 'failed', 'cancelled') then now() end where id = $1`, [id, status]);
/** The state of a job's edges to its children, by child id. */
const edges = async (parent: string) =>
  Object.fromEntries((await sql.unsafe(`select child_id::text as child, state from ${s}.job_deps where parent_id = $1`, [parent]))
    .map((r) => [r.child as string, r.state as string]));
/** parents_left of each job, in the order given. */
const left = async (ids: string[]) => {
  const rows = await sql.unsafe(`select id::text, parents_left from ${s}.jobs where id = any($1::bigint[])`, [ids]);
  const by = new Map(rows.map((r) => [r.id as string, r.parents_left as number]));
  return ids.map((id) => by.get(id));
};
const errorNames = async (id: string) => (await queue.getJob(id))!.errors.map((e) => e.name);

describe("a job moved by hand from one end status to another", () => {
  it("failed to completed: the children its failure ended come back and go on, as after a retry and a completion", async () => {
    // p -> c (fail) -> g (fail); p -> k (cancel); p -> r (run)
    const [p, c, g, k, r] = await flow("to-completed", [
      { name: "p" }, { name: "c", parents: ["p"] }, { name: "g", parents: ["c"] },
      { name: "k", parents: [{ name: "p", onFailure: "cancel" }] }, { name: "r", parents: [{ name: "p", onFailure: "run" }] },
    ]) as [string, string, string, string, string];
    await set(p, "failed");
    expect(await statusOf([c, g, k, r])).toEqual(["failed", "failed", "cancelled", "queued"]);

    await set(p, "completed");

    expect(await statusOf([c, g, k, r])).toEqual(["queued", "pending", "queued", "queued"]);
    expect(await edges(p)).toEqual({ [c]: "d", [k]: "d", [r]: "d" });
    expect(await edges(c)).toEqual({ [g]: "w" });
    expect(await left([c, g, k, r])).toEqual([0, 1, 0, 0]);
    // the record of the failure stays, as a retry keeps it
    expect(await errorNames(c)).toEqual(["ParentFailed"]);
    await set(c, "completed");
    expect(await statusOf([g])).toEqual(["queued"]);
  });

  it("completed to failed: children still waiting for other parents are failed or cancelled by their modes", async () => {
    // p and o are parents of c (fail), k (cancel) and r (run); q -> f, a child that already went on
    const [p, o, c, k, r, f] = await flow("to-failed", [
      { name: "p" }, { name: "o" },
      { name: "c", parents: ["p", "o"] }, { name: "k", parents: ["p", "o"], onParentFailure: "cancel" },
      { name: "r", parents: ["p", "o"], onParentFailure: "run" }, { name: "f", parents: ["p"] },
    ]) as [string, string, string, string, string, string];
    await set(p, "completed");
    expect(await statusOf([c, k, r, f])).toEqual(["pending", "pending", "pending", "queued"]);

    await set(p, "failed");

    expect(await statusOf([c, k, r, f])).toEqual(["failed", "cancelled", "pending", "queued"]);
    expect((await queue.getJob(c))!.errors.at(-1)).toMatchObject({ name: "ParentFailed", parent: p });
    expect(await edges(p)).toEqual({ [c]: "b", [k]: "b", [r]: "d", [f]: "d" });
    expect(await left([c, k, r])).toEqual([2, 2, 1]);
    // as after any failure: the child is retried through its parent
    expect((await queue.retry(c).catch((e: PgPulseError) => e)) as PgPulseError).toMatchObject({ details: { parent: p } });
    await set(o, "completed");
    expect(await statusOf([c, k, r])).toEqual(["failed", "cancelled", "queued"]);
    await queue.retry(p);
    expect(await statusOf([c, k])).toEqual(["pending", "pending"]);
    await set(p, "completed");
    expect(await statusOf([c, k])).toEqual(["queued", "queued"]);
  });

  it("failed to cancelled: the children say the parent was cancelled, and their own children are left as they are", async () => {
    const [p, c, g, k] = await flow("to-cancelled", [
      { name: "p" }, { name: "c", parents: ["p"] }, { name: "g", parents: ["c"] },
      { name: "k", parents: [{ name: "p", onFailure: "cancel" }] },
    ]) as [string, string, string, string];
    await set(p, "failed");

    await set(p, "cancelled");

    expect(await statusOf([c, g, k])).toEqual(["failed", "failed", "cancelled"]);
    expect((await queue.getJob(c))!.errors.at(-1)).toMatchObject({ name: "ParentCancelled", parent: p });
    expect(await errorNames(g)).toEqual(["ParentFailed"]);
    expect([await edges(p), await edges(c)]).toEqual([{ [c]: "b", [k]: "b" }, { [g]: "b" }]);
  });

  it("a child two parents ended waits for both to be moved or retried", async () => {
    // p1 and p2 are parents of c: p1 failed first (c failed), p2 had completed
    const [p1, p2, c] = await flow("two-parents", [{ name: "p1" }, { name: "p2" }, { name: "c", parents: ["p1", "p2"] }]) as
      [string, string, string];
    await set(p2, "completed");
    await set(p1, "failed");
    expect(await statusOf([c])).toEqual(["failed"]);

    // p2 moved to failed holds c too; p1 moved to completed does not release it
    await set(p2, "failed");
    expect(await edges(p2)).toEqual({ [c]: "b" });
    await set(p1, "completed");
    expect(await statusOf([c])).toEqual(["failed"]);
    expect((await queue.retry(c).catch((e: PgPulseError) => e)) as PgPulseError).toMatchObject({ details: { parent: p2 } });
    await set(p2, "completed");
    expect(await statusOf([c])).toEqual(["queued"]);
    expect(await left([c])).toEqual([0]);
  });

  it("a completed job put back by hand: children still pending wait for it again, and its failure then ends them", async () => {
    const [p, o, c] = await flow("completed-back", [{ name: "p" }, { name: "o" }, { name: "c", parents: ["p", "o"] }]) as
      [string, string, string];
    await set(p, "completed");
    expect(await left([c])).toEqual([1]);

    await set(p, "queued");

    expect(await edges(p)).toEqual({ [c]: "w" });
    expect(await left([c])).toEqual([2]);
    await set(p, "failed");
    expect(await statusOf([c])).toEqual(["failed"]);
    await set(o, "completed");
    expect(await statusOf([c])).toEqual(["failed"]);
  });

  it("a batch's failed job moved to completed: the success callback runs once every job completed", async () => {
    const batch = await queue.enqueueBatch(
      [{ task: "t", queue: "batch-move", delayMs: 3_600_000 }, { task: "t", queue: "batch-move", delayMs: 3_600_000 }],
      { callbacks: { success: { task: "ok", queue: "batch-move" }, complete: { task: "done", queue: "batch-move" } } },
    );
    const [a, b] = batch.jobs.map((j) => j.id) as [string, string];
    const [success, complete] = [batch.callbacks.success!, batch.callbacks.complete!];
    await set(a, "failed");
    expect(await statusOf([success.id, complete.id])).toEqual(["cancelled", "pending"]);

    await set(a, "completed");
    expect(await statusOf([success.id, complete.id])).toEqual(["pending", "pending"]);
    await set(b, "completed");
    expect(await statusOf([success.id, complete.id])).toEqual(["queued", "queued"]);
  });
});

// A batch's failure callback that the completion of every job cancelled, when a job leaves its
// completion by hand: the batch's first failure runs the callback.
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
