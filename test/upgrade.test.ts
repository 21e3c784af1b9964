import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { createQueue, createWorker, migrate, SCHEMA_VERSION } from "../src/index.ts";
import { DATABASE_URL, until } from "./support/db.ts";
import { schemaAt } from "./support/schema-at.ts";

// Upgrading a schema that holds live jobs: queued, running (started, and
// claimed ahead), finished. Version 4 is built from the shipped migration
// files and used as a worker of that version used it (its claim() and the
// statements its tables take); then migrate() brings it to the current
// version while that worker holds its jobs, and the current worker takes over.
const sql = postgres(DATABASE_URL, { onnotice: () => {}, max: 2 });
const schema = `t_upgrade_${crypto.randomUUID().slice(0, 8)}`;
const s = `"${schema}"`;
afterAll(async () => {
  await sql.unsafe(`drop schema if exists ${s} cascade`);
  await sql.end({ timeout: 5 });
});

const statuses = async () =>
  Object.fromEntries((await sql.unsafe(`select status::text, count(*)::int as n from ${s}.jobs group by 1`)).map((r) => [r.status, r.n]));

describe("upgrading to the current version with live jobs", () => {
  it("ends every job: those queued, running (started or claimed ahead) and finished before the upgrade", async () => {
    const from = 4;
    expect(SCHEMA_VERSION).toBeGreaterThan(from);
    await schemaAt(sql, schema, from);

    // Version 4 at work: 30 jobs enqueued through its enqueue_many(), a worker
    // that claimed 10 (4 started, 6 claimed ahead) and finished 3 of them.
    const enqueued = await sql.unsafe(
      `select (e.job).id::text as id from ${s}.enqueue_many($1::text::jsonb) e order by e.ord`,
      [JSON.stringify(Array.from({ length: 30 }, (_, i) => ({ task: "work", payload: { i }, queue: "upgrade" })))],
    );
    expect(enqueued).toHaveLength(30);
    await sql.unsafe(`insert into ${s}.workers (id, queues, tasks, concurrency, listening) values ('old-worker', '{upgrade}', '{work}', 4, true)`);
    const claimed = await sql.unsafe(`select id::text from ${s}.claim('["upgrade"]', '["work"]', 10, 'old-worker', null, 6)`);
    expect(claimed).toHaveLength(10);
    const started = await sql.unsafe(`select id::text from ${s}.jobs where status = 'running' and started_at is not null order by id`);
    expect(started).toHaveLength(4);
    const finished = started.slice(0, 3).map((r) => r.id as string);
    await sql.unsafe(
      `update ${s}.jobs set status = 'completed', result = '{"before": true}', progress = 100, finished_at = now(), worker_id = null
        where id = any($1::text::bigint[])`,
      [`{${finished.join(",")}}`],
    );
    expect(await statuses()).toEqual({ queued: 20, running: 7, completed: 3 });

    // The upgrade, with the old worker's jobs still running.
    const result = await migrate({ connection: DATABASE_URL, schema });
    expect(result).toEqual({ applied: Array.from({ length: SCHEMA_VERSION - from }, (_, i) => from + 1 + i), version: SCHEMA_VERSION });
    expect(await statuses()).toEqual({ queued: 20, running: 7, completed: 3 });

    // A worker of the old version still claims through claim(), which the upgrade kept.
    const [still] = await sql.unsafe(`select id::text from ${s}.claim('["upgrade"]', '["work"]', 1, 'old-worker', null, 0)`);
    expect(still!.id).toBeDefined();

    // Then it dies: its heartbeat stops. The current worker's reaper gives its
    // 8 jobs back (the claimed-ahead ones without counting an attempt), and
    // the current worker runs everything that is left.
    await sql.unsafe(`update ${s}.workers set heartbeat_at = now() - interval '1 hour' where id = 'old-worker'`);
    const ran = new Map<number, number>();
    const worker = createWorker({
      connection: DATABASE_URL, schema, queues: ["upgrade"], logger: "error", concurrency: 4, heartbeatIntervalMs: 200, staleAfterMs: 1000,
      tasks: { work: async (p: { i: number }) => void ran.set(p.i, (ran.get(p.i) ?? 0) + 1) },
    });
    await worker.start();
    try {
      await until(async () => (await statuses()).completed === 30, 20_000);
    } finally {
      await worker.stop();
    }
    expect(await statuses()).toEqual({ completed: 30 });
    // The three finished before the upgrade were not run again and kept what they had.
    const before = await sql.unsafe(`select result from ${s}.jobs where id = any($1::text::bigint[])`, [`{${finished.join(",")}}`]);
    expect(before.map((r) => r.result)).toEqual([{ before: true }, { before: true }, { before: true }]);
    expect(ran.size).toBe(27);
    expect([...ran.values()].every((n) => n === 1)).toBe(true);
    // Attempts: 2 for the two jobs the old worker had started and not finished
    // (one before the upgrade, one after): their first attempt was spent. 1 for
    // the rest, the 6 it had claimed ahead included: they never started.
    const attempts = await sql.unsafe(`select attempts, count(*)::int as n from ${s}.jobs group by 1 order by 1`);
    expect(attempts).toEqual([{ attempts: 1, n: 28 }, { attempts: 2, n: 2 }]);
    const queue = createQueue({ connection: DATABASE_URL, schema });
    try {
      expect((await queue.getJob(finished[0]!))!.result).toEqual({ before: true });
    } finally {
      await queue.close();
    }
  });
});
