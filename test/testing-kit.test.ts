import { describe, expect, it } from "vitest";
import { defineTask, PermanentError, type Queue, type SqlHandle } from "../src/index.ts";
import { expectEnqueued, findJobs, runJobs, withRollback } from "../src/testing/index.ts";
import * as v from "valibot";
import { testDb } from "./support/db.ts";

// pgpulse/testing, used as a user's test suite would use it.
const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;
const s = `"${schema}"`;

await sql.unsafe(`create table ${s}.users (email text primary key)`);

/** The application code under test: signs a user up and enqueues the welcome email, in one transaction. */
async function signUp(q: Queue, email: string, tx: SqlHandle) {
  await (tx as typeof sql).unsafe(`insert into ${s}.users (email) values ($1)`, [email]);
  await q.enqueue("send-welcome", { email, template: "v2" }, { queue: "kit", tx });
}

const sent: string[] = [];
const tasks = {
  "send-welcome": defineTask({
    name: "send-welcome",
    schema: v.object({ email: v.string(), template: v.string() }),
    handler: async (p, ctx) => {
      ctx.log("sending", { to: p.email });
      sent.push(p.email);
      return { sent: true };
    },
  }),
  flaky: async (_p: unknown, ctx: { job: { attempt: number } }) => {
    if (ctx.job.attempt < 3) throw new Error(`attempt ${ctx.job.attempt}`);
    return "third time";
  },
  doomed: async () => {
    throw new PermanentError("never");
  },
  spawn: async (p: { n: number }) => {
    if (p.n > 0) await queue.enqueue("spawn", { n: p.n - 1 }, { queue: "kit-spawn" });
  },
};

describe("pgpulse/testing", () => {
  it("inside a rolled-back transaction: expectEnqueued finds the job, runJobs runs it, and nothing is left afterwards", async () => {
    sent.length = 0;
    const out = await withRollback(sql, async (tx) => {
      await signUp(queue, "ann@example.com", tx);
      const [job] = await expectEnqueued(queue, { task: "send-welcome", payload: { email: "ann@example.com" } }, { tx, count: 1 });
      const ran = await runJobs(queue, { tasks, tx });
      expect(ran).toMatchObject({ completed: 1, failed: 0, runs: [{ id: job!.id, task: "send-welcome", attempt: 1, status: "completed" }] });
      expect(sent).toEqual(["ann@example.com"]);
      const done = (await queue.getJob(job!.id, { tx, logs: true }))!;
      expect(done).toMatchObject({ status: "completed", result: { sent: true } });
      expect(done.logs.map((l) => l.message)).toEqual(["sending"]);
      return job!.id;
    });
    expect(await queue.getJob(out)).toBeNull();
    expect((await sql.unsafe(`select count(*)::int as n from ${s}.users`))[0]!.n).toBe(0);
    expect((await sql.unsafe(`select count(*)::int as n from ${s}.workers`))[0]!.n).toBe(0);
  });

  it("expectEnqueued says what was there when nothing matches", async () => {
    await withRollback(sql, async (tx) => {
      await signUp(queue, "bob@example.com", tx);
      const error = await expectEnqueued(queue, { task: "send-welcome", payload: { email: "carol@example.com" } }, { tx }).catch((e: Error) => e);
      expect((error as Error).message).toMatch(/found 0\njobs of task send-welcome:\n  #\d+ send-welcome \(queued, queue kit\) \{"email":"bob@example.com","template":"v2"\}/);
      await expect(expectEnqueued(queue, { task: "send-welcome" }, { tx, count: 2 })).rejects.toThrow(/expected 2 jobs .* found 1/);
      await expect(expectEnqueued(queue, { task: "nothing-like-it" }, { tx })).rejects.toThrow(/no job of task nothing-like-it at all/);
    });
  });

  it("runs retries at once, fails what fails, and runs what the jobs enqueue until nothing is left", async () => {
    await withRollback(sql, async (tx) => {
      await queue.enqueueMany([
        { task: "flaky", queue: "kit-r" },
        { task: "doomed", queue: "kit-r" },
      ], { tx });
      const ran = await runJobs(queue, { tasks, tx });
      expect(ran).toMatchObject({ completed: 1, failed: 1, retried: 2 });
      const of = (task: string) => ran.runs.filter((r) => r.task === task).map((r) => [r.attempt, r.status]);
      expect(of("flaky")).toEqual([[1, "queued"], [2, "queued"], [3, "completed"]]);
      expect(of("doomed")).toEqual([[1, "failed"]]);
      expect(await findJobs(queue, { status: "failed" }, { tx })).toHaveLength(1);
    });
  });

  it("outside a transaction, runs a chain of jobs each run enqueues, and a flow in order", async () => {
    await queue.enqueue("spawn", { n: 3 }, { queue: "kit-spawn" });
    const ran = await runJobs(queue, { tasks, queues: ["kit-spawn"] });
    expect(ran.completed).toBe(4);
    await queue.enqueueFlow([
      { name: "a", task: "send-welcome", queue: "kit-flow", payload: { email: "a@x", template: "t" } },
      { name: "b", task: "send-welcome", queue: "kit-flow", payload: { email: "b@x", template: "t" }, parents: ["a"] },
    ]);
    sent.length = 0;
    await runJobs(queue, { tasks, queues: ["kit-flow"] });
    expect(sent).toEqual(["a@x", "b@x"]);
  });

  it("a delayed job runs when `now` reaches it; maxJobs bounds a job that re-enqueues itself", async () => {
    await withRollback(sql, async (tx) => {
      await queue.enqueue("send-welcome", { email: "later@x", template: "t" }, { queue: "kit-later", delayMs: 3_600_000, tx });
      expect((await runJobs(queue, { tasks, tx, queues: ["kit-later"] })).completed).toBe(0);
      const inTwoHours = new Date(Date.now() + 7_200_000);
      expect((await runJobs(queue, { tasks, tx, queues: ["kit-later"], now: () => inTwoHours })).completed).toBe(1);
      await queue.enqueue("spawn", { n: 1_000_000 }, { queue: "kit-forever", tx });
      const bounded = await runJobs(queue, { tasks: { spawn: async (p: { n: number }) => void (await queue.enqueue("spawn", p, { queue: "kit-forever", tx })) }, tx, maxJobs: 5 });
      expect(bounded.completed).toBe(5);
    });
  });
});

describe("runJobs order", () => {
  it("in a transaction, jobs due now in several queues start oldest first", async () => {
    await withRollback(sql, async (tx) => {
      const order: string[] = [];
      const a = await queue.enqueue("ordered", { n: 1 }, { queue: "zz-emails", tx });
      const b = await queue.enqueue("ordered", { n: 2 }, { queue: "aa-billing", tx });
      const c = await queue.enqueue("ordered", { n: 3 }, { queue: "mm-other", tx });
      await runJobs(queue, { tasks: { ordered: async (_p, ctx) => void order.push(ctx.job.id) }, tx });
      expect(order).toEqual([a.id, b.id, c.id]);
    });
  });
});
