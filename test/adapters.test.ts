import { drizzle as drizzlePg } from "drizzle-orm/node-postgres";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { fromDrizzle } from "../src/adapters/drizzle.ts";
import { runJobs } from "../src/testing/index.ts";
import { fromKysely } from "../src/adapters/kysely.ts";
import { fromPg } from "../src/adapters/pg.ts";
import type { Job } from "../src/index.ts";
import { DATABASE_URL, testDb } from "./support/db.ts";

// Enqueueing inside other drivers' transactions: node-postgres, Kysely, Drizzle
// (on node-postgres and on postgres.js), each with its real package.
const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;
const s = `"${schema}"`;

const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
const kysely = new Kysely<any>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: DATABASE_URL, max: 2 }) }) });
const drizzleOnPg = drizzlePg(new pg.Pool({ connectionString: DATABASE_URL, max: 2 }));
const postgresClient = postgres(DATABASE_URL, { max: 2, onnotice: () => {} });
const drizzleOnPostgres = drizzlePostgres(postgresClient);
afterAll(async () => {
  await pool.end();
  await kysely.destroy();
  await (drizzleOnPg.$client as pg.Pool).end();
  await postgresClient.end({ timeout: 5 });
});

await sql.unsafe(`create table ${s}.orders (id serial primary key, what text not null)`);
const ordersLike = async (what: string) =>
  (await sql.unsafe(`select count(*)::int as n from ${s}.orders where what = $1`, [what]))[0]!.n as number;
const jobsIn = async (queueName: string) =>
  (await sql.unsafe(`select count(*)::int as n from ${s}.jobs where queue = $1`, [queueName]))[0]!.n as number;

/** The checks every adapter passes: enqueue, a flow and a read commit with the transaction; a rollback leaves nothing. */
function isAJob(job: Job, task: string) {
  expect(job).toMatchObject({ task, status: "queued", attempts: 0 });
  expect(job.id).toMatch(/^[0-9]+$/);
  expect(job.createdAt).toBeInstanceOf(Date);
  expect(Number.isNaN(job.createdAt.getTime())).toBe(false);
  expect(job.runAt).toBeInstanceOf(Date);
}

describe("pgpulse/pg", () => {
  it("enqueues in a node-postgres transaction, and a rollback takes the jobs with it", async () => {
    const client = await pool.connect();
    try {
      await client.query("begin");
      await client.query(`insert into ${s}.orders (what) values ('pg-ok')`);
      const tx = fromPg(client);
      const job = await queue.enqueue("receipt", { order: 1 }, { queue: "pg", tx });
      isAJob(job, "receipt");
      const keyed = await queue.enqueue("receipt", {}, { queue: "pg", key: "pg-key", tx });
      expect((await queue.enqueue("receipt", {}, { queue: "pg", key: "pg-key", tx })).id).toBe(keyed.id);
      const flow = await queue.enqueueFlow([{ name: "a", task: "t", queue: "pg" }, { name: "b", task: "t", queue: "pg", parents: ["a"] }], { tx });
      expect(flow.map((j) => j.status)).toEqual(["queued", "pending"]);
      // the transaction sees its own jobs; others do not yet
      expect((await queue.getJob(job.id, { tx }))!.id).toBe(job.id);
      expect(await queue.getJob(job.id)).toBeNull();
      await client.query("commit");
      expect(await jobsIn("pg")).toBe(4);

      await client.query("begin");
      await client.query(`insert into ${s}.orders (what) values ('pg-rolled-back')`);
      await queue.enqueueMany([{ task: "t", queue: "pg-rollback" }, { task: "t", queue: "pg-rollback" }], { tx });
      await client.query("rollback");
      expect(await jobsIn("pg-rollback")).toBe(0);
      expect(await ordersLike("pg-rolled-back")).toBe(0);
    } finally {
      client.release();
    }
  });

  it("refuses a Pool, and what is not a client", async () => {
    expect(() => fromPg(pool as never)).toThrow(expect.objectContaining({ code: "INVALID_INPUT" }));
    expect(() => fromPg({} as never)).toThrow(expect.objectContaining({ code: "INVALID_INPUT" }));
    await expect(queue.enqueue("t", {}, { tx: { unsafe: () => [] } as never })).rejects.toMatchObject({ code: "INVALID_INPUT" });
  });
});

describe("pgpulse/kysely", () => {
  it("enqueues in a Kysely transaction, and a rollback takes the jobs with it", async () => {
    const job = await kysely.transaction().execute(async (trx) => {
      await trx.insertInto(`${schema}.orders` as never).values({ what: "kysely-ok" } as never).execute();
      return queue.enqueue("receipt", {}, { queue: "kysely", tx: fromKysely(trx) });
    });
    isAJob(job, "receipt");
    expect(await jobsIn("kysely")).toBe(1);
    await expect(
      kysely.transaction().execute(async (trx) => {
        await trx.insertInto(`${schema}.orders` as never).values({ what: "kysely-rolled-back" } as never).execute();
        await queue.enqueueBatch([{ task: "t", queue: "kysely-rollback" }], { tx: fromKysely(trx), callbacks: { complete: { task: "t", queue: "kysely-rollback" } } });
        throw new Error("roll back");
      }),
    ).rejects.toThrow("roll back");
    expect(await jobsIn("kysely-rollback")).toBe(0);
    expect(await ordersLike("kysely-rolled-back")).toBe(0);
    expect(await ordersLike("kysely-ok")).toBe(1);
  });
});

describe("pgpulse/drizzle", () => {
  for (const [driver, drizzleDb] of [["node-postgres", drizzleOnPg], ["postgres.js", drizzleOnPostgres]] as const) {
    it(`enqueues in a Drizzle transaction on ${driver}, and a rollback takes the jobs with it`, async () => {
      const q = `drizzle-${driver}`;
      const job = await (drizzleDb as typeof drizzleOnPg).transaction(async (tx) => {
        const wrapped = fromDrizzle(tx);
        const one = await queue.enqueue("receipt", { n: 1 }, { queue: q, tx: wrapped, delayMs: 1000 });
        const keyed = await queue.enqueue("receipt", {}, { queue: q, key: `${q}-key`, tx: wrapped });
        expect(keyed.createdAt).toBeInstanceOf(Date);
        const seen = await queue.getJob(one.id, { tx: wrapped });
        expect(seen!.runAt.getTime() - seen!.createdAt.getTime()).toBe(1000);
        return one;
      });
      isAJob(job, "receipt");
      expect(await jobsIn(q)).toBe(2);
      await expect(
        (drizzleDb as typeof drizzleOnPg).transaction(async (tx) => {
          await queue.enqueue("receipt", {}, { queue: `${q}-rollback`, tx: fromDrizzle(tx) });
          throw new Error("roll back");
        }),
      ).rejects.toThrow("roll back");
      expect(await jobsIn(`${q}-rollback`)).toBe(0);
    });

    it(`on ${driver}: errors keep their codes (a taken key is INVALID_TRANSITION), and Dates go as parameters (runJobs with now)`, async () => {
      const q = `drizzle-codes-${driver}`;
      const first = await queue.enqueue("receipt", {}, { queue: q, key: `${q}-k` });
      await sql.unsafe(`update "${schema}".jobs set status = 'failed', finished_at = now() where id = $1`, [first.id]);
      await queue.enqueue("receipt", {}, { queue: q, key: `${q}-k` });
      const rolledBack = new Error("roll back");
      const refused = await (drizzleDb as typeof drizzleOnPg).transaction(async (tx) => {
        const caught = await queue.retry(first.id, { tx: fromDrizzle(tx) }).catch((e: unknown) => e);
        expect(caught).toMatchObject({ code: "INVALID_TRANSITION", details: { reason: "key" } });
        throw rolledBack;
      }).catch((e: unknown) => e);
      expect(refused).toBe(rolledBack);
      const outcome = await (drizzleDb as typeof drizzleOnPg).transaction(async (tx) => {
        const wrapped = fromDrizzle(tx);
        // a job due in a minute, run by a test clock an hour ahead: the clock goes as a parameter
        const later = await queue.enqueue("receipt", { n: 2 }, { queue: `${q}-later`, delayMs: 60_000, tx: wrapped });
        const ran = await runJobs(queue, { tasks: { receipt: async () => "sent" }, tx: wrapped, queues: [`${q}-later`], now: () => new Date(Date.now() + 3_600_000) });
        expect(ran.completed).toBe(1);
        expect(await queue.getJob(later.id, { tx: wrapped })).toMatchObject({ status: "completed", result: "sent" });
        throw rolledBack;
      }).catch((e: unknown) => e);
      expect(outcome).toBe(rolledBack);
    });
  }
});
