/**
 * How a service tests its jobs with pgpulse/testing (docs/testing.md): the
 * code under test signs a user up and enqueues a welcome email in the same
 * transaction; the test checks the job was enqueued, runs it in-process, and
 * rolls everything back. In your project, import from "pgpulse" and
 * "pgpulse/testing"; this example imports the sources so that it runs in
 * this repository's test suite.
 */
import postgres from "postgres";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createQueue, migrate } from "../../src/index.ts";
import { expectEnqueued, runJobs, withRollback } from "../../src/testing/index.ts";

const url = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const schema = `example_testing_${crypto.randomUUID().slice(0, 8)}`;
const sql = postgres(url, { onnotice: () => {} });
const queue = createQueue({ connection: sql, schema });

beforeAll(async () => {
  await migrate({ connection: sql, schema });
  await sql.unsafe(`create table "${schema}".users (email text primary key)`);
});
afterAll(async () => {
  await sql.unsafe(`drop schema "${schema}" cascade`);
  await sql.end();
});

// The application code: a user and their welcome email commit together.
async function signUp(email: string, tx: postgres.TransactionSql) {
  await tx.unsafe(`insert into "${schema}".users (email) values ($1)`, [email]);
  await queue.enqueue("send-welcome", { email }, { tx });
}

// The handlers, as the worker registers them.
const outbox: string[] = [];
const tasks = {
  "send-welcome": async ({ email }: { email: string }) => {
    outbox.push(email);
    return { sent: true };
  },
};

it("signing up enqueues a welcome email, which sends it", async () => {
  await withRollback(sql, async (tx) => {
    await signUp("ann@example.com", tx);
    await expectEnqueued(queue, { task: "send-welcome", payload: { email: "ann@example.com" } }, { tx, count: 1 });
    const ran = await runJobs(queue, { tasks, tx });
    expect(ran.completed).toBe(1);
    expect(outbox).toEqual(["ann@example.com"]);
  });
  // rolled back: the next test starts from an empty table
  expect(await sql.unsafe(`select * from "${schema}".users`)).toHaveLength(0);
});
