import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { STOP_IO_TIMEOUT_MS } from "../src/worker/stop.ts";
import { DATABASE_URL, holdLocks, deadline, testDb, until, untilWaitingOnLock } from "./support/db.ts";
import { type Running, start } from "./support/spawn.ts";
import { startProxy } from "./support/tcp-proxy.ts";

// A worker process whose last statements the database does not answer (one waiting on a lock,
// or all of them black-holed) exits by itself once its stop's budget has run out: what it could
// not write is left to the reaper. The processes run dist/: `npm run build` first.
const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;
const s = `"${schema}"`;
const held = fileURLToPath(new URL("./fixtures/stop-held.mjs", import.meta.url));
const twice = fileURLToPath(new URL("./fixtures/stop-twice.mjs", import.meta.url));

/** Room past the budget for the process to end (and for a busy machine). */
const MARGIN_MS = 4000;

/** Resolves with the exit code, or with "still running" once ms have passed. */
function exitWithin(child: Running, ms: number): Promise<number | null | string> {
  return Promise.race([child.exited, new Promise<string>((r) => deadline(ms).addEventListener("abort", () => r("still running")))]);
}

const lock = (statement: string, params: string[] = []) => holdLocks(sql, statement, params);

/** Makes the worker's row stale and reaps: its jobs go back to the queue. */
async function reapAfter(workerId: string) {
  await sql.unsafe(`update ${s}.workers set heartbeat_at = now() - interval '1 hour' where id = $1`, [workerId]);
  const rescuer = db.worker({ queues: ["none"], tasks: { hang: async () => 1 } });
  // (a worker reaps as it starts)
  await rescuer.start();
}

describe("a stop whose last statements get no answer", () => {
  it("a finish write waiting on a lock: the process exits within the budget, the write is cancelled, and the reaper brings the job back", async () => {
    const id = "held-lock";
    const child = start(process.execPath, [held, JSON.stringify({ url: DATABASE_URL, schema, id, queues: ["held-lock"] })]);
    let release: (() => Promise<void>) | undefined;
    try {
      await child.waitForOutput(/^ready /m);
      const job = await queue.enqueue("held", {}, { queue: "held-lock" });
      await child.waitForOutput(new RegExp(`^started ${job.id}$`, "m"));
      release = await lock(`select 1 from ${s}.jobs where id = $1 for update`, [job.id]);
      child.child.kill("SIGUSR2");
      await untilWaitingOnLock(sql, `%${schema}".finish(%`);
      child.child.kill("SIGTERM");
      // The lock is held until the process has exited (or the wait ran out): nothing of the
      // stopped worker may wait on it. (before, the write held its connection, and the process
      // with it, until the lock went)
      expect(await exitWithin(child, STOP_IO_TIMEOUT_MS + MARGIN_MS)).toBe(0);
      expect(child.output()).toMatch(/^stopped$/m);
      await release();
      release = undefined;
      // The end was not written and the row not removed: both are the reaper's.
      expect(await queue.getJob(job.id)).toMatchObject({ status: "running", workerId: id });
      await reapAfter(id);
      expect(await queue.getJob(job.id)).toMatchObject({ status: "queued" });
    } finally {
      if (child.child.exitCode === null) child.child.kill("SIGKILL");
      await release?.();
    }
  });

  it("every connection black-holed while a claim waits on a lock: the cancel that cannot get through does not hold the process", async () => {
    const id = "held-dark";
    const proxy = await startProxy({ host: "127.0.0.1", port: 5432 });
    const url = `postgres://postgres@127.0.0.1:${proxy.port}/test`;
    // A queue with a limit: a claim that finds a job of it locks the queue's row, which the test
    // holds, so the claim of the second job waits.
    await queue.configureQueue("held-dark", { concurrency: 5 });
    const first = await queue.enqueue("hang", {}, { queue: "held-dark" });
    const child = start(process.execPath, [twice, JSON.stringify({ url, schema, id, queues: ["held-dark"] })]);
    let release: (() => Promise<void>) | undefined;
    try {
      await child.waitForOutput(new RegExp(`^started ${first.id}$`, "m"));
      release = await lock(`select 1 from ${s}.queues where name = 'held-dark' for update`);
      const second = await queue.enqueue("hang", {}, { queue: "held-dark" });
      await untilWaitingOnLock(sql, `%${schema}".claim_rows%`);
      proxy.stallAll();
      // (the fixture stops twice, the second with no grace: the claim is cancelled at once,
      // by a request that the black hole swallows)
      child.child.kill("SIGTERM");
      expect(await exitWithin(child, STOP_IO_TIMEOUT_MS + MARGIN_MS)).toBe(0);
      expect(child.output()).toMatch(/^stopped$/m);
      await release();
      release = undefined;
      // (the claim, which no cancel reached, runs once the lock goes: it may take the second job)
      await until(async () => (await sql.unsafe(`select 1 from pg_stat_activity where query like $1 and state = 'active'`, [`%${schema}".claim_rows%`])).length === 0);
      // Nothing of the last writes got through: the jobs are the reaper's.
      await reapAfter(id);
      expect(await queue.getJob(first.id)).toMatchObject({ status: "queued" });
      expect(await queue.getJob(second.id)).toMatchObject({ status: "queued" });
    } finally {
      if (child.child.exitCode === null) child.child.kill("SIGKILL");
      await release?.();
      await proxy.close();
    }
  });
});
