/**
 * Input at the edges of what Postgres and a Date can hold, through the library,
 * the HTTP API and the CLI: each is refused with a typed error that names the
 * field, and changes nothing (each of these was a 500, a raw database error,
 * or a write that went through, before).
 */
import { fileURLToPath } from "node:url";
import * as v from "valibot";
import { describe, expect, it } from "vitest";
import { createApi, enqueuedJobSchema, jobSchema } from "../src/api/index.ts";
import { openApiDocument } from "../src/api/openapi.ts";
import { createQueue, PgPulseError, silentLogger } from "../src/index.ts";
import { apiClient, apiFixture, expectError, WRITE } from "./support/api.ts";
import { DATABASE_URL, testDb } from "./support/db.ts";
import { run } from "./support/spawn.ts";

const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;
const { call, jobCount } = apiFixture(db);
const root = fileURLToPath(new URL("..", import.meta.url));
const cli = (args: string[]) => run(process.execPath, [`${root}dist/cli/main.js`, ...args], { DATABASE_URL, PGPULSE_SCHEMA: schema });

/** What a library call throws: a typed PgPulseError with this code is expected. */
async function thrown(f: () => Promise<unknown>): Promise<{ name: string; code: unknown; message: string }> {
  try {
    await f();
  } catch (e) {
    return { name: (e as Error).constructor.name, code: (e as { code?: unknown }).code, message: (e as Error).message };
  }
  return { name: "none", code: null, message: "did not throw" };
}

describe("a time filter whose UTC offset does not exist, or carries it past the years 1 to 9999", () => {
  const bad = "2026-11-29T10:00+24:00";

  it("GET /jobs?createdFrom=<offset +24:00> answers 400, not 500", async () => {
    expectError(await call("GET", `/jobs?createdFrom=${encodeURIComponent(bad)}`), 400, "INVALID_INPUT");
  });

  it("GET /jobs?finishedTo=<offset +05:99> answers 400, not 500", async () => {
    expectError(await call("GET", `/jobs?finishedTo=${encodeURIComponent("2026-11-29T10:00+05:99")}`), 400, "INVALID_INPUT");
  });

  it("POST /jobs/cancel with such a filter answers 400, not 500", async () => {
    expectError(await call("POST", "/jobs/cancel", { json: { filter: { createdFrom: bad } } }), 400, "INVALID_INPUT");
  });

  it("the dashboard's job list shows the refusal (400), not an error page 500", async () => {
    const r = await call("GET", `/dashboard/jobs?createdFrom=${encodeURIComponent(bad)}`);
    expect(r.status).toBe(400);
  });

  it("queue.listJobs / retryJobs throw PgPulseError INVALID_INPUT, not RangeError", async () => {
    expect(await thrown(() => queue.listJobs({ createdFrom: bad }))).toMatchObject({ name: "PgPulseError", code: "INVALID_INPUT" });
    expect(await thrown(() => queue.retryJobs({ finishedTo: bad }))).toMatchObject({ name: "PgPulseError", code: "INVALID_INPUT" });
  });

  it("a time whose offset carries it past year 9999 (or before year 1) is refused by the library, not by Postgres", async () => {
    await queue.enqueue("t", {}); // (a bulk run over an empty table never reaches Postgres)
    expect(await thrown(() => queue.listJobs({ createdFrom: "9999-12-31T23:00-12:00" }))).toMatchObject({ name: "PgPulseError", code: "INVALID_INPUT" });
    expect(await thrown(() => queue.listJobs({ createdFrom: "0001-01-01T00:00+14:00" }))).toMatchObject({ name: "PgPulseError", code: "INVALID_INPUT" });
    // (over HTTP this is the safety net's 400 with no path: "the database refused a value in this request")
    const r = await call("GET", `/jobs?createdFrom=${encodeURIComponent("9999-12-31T23:00-12:00")}`);
    expect(expectError(r, 400, "INVALID_INPUT")).toEqual([expect.objectContaining({ path: "createdFrom" })]);
  });

  it("pgpulse jobs list --created-from <offset +24:00> exits 2 with a usage message, not 1 with 'Invalid time value'", async () => {
    const r = await cli(["jobs", "list", "--created-from", bad]);
    expect(r.stderr).not.toContain("Invalid time value");
    expect(r.code).toBe(2);
  });
});

describe("a delay too long for a run time to be read back", () => {
  it("POST /jobs and queue.enqueue refuse a delay over 100 years, naming delayMs, and write nothing", async () => {
    const before = await jobCount();
    const details = expectError(await call("POST", "/jobs", { json: { task: "far", delayMs: Number.MAX_SAFE_INTEGER } }), 400, "INVALID_INPUT");
    expect(details).toEqual([expect.objectContaining({ path: "delayMs" })]);
    expect(await thrown(() => queue.enqueue("far", {}, { delayMs: 3_155_760_000_001 }))).toMatchObject({ name: "PgPulseError", code: "INVALID_INPUT" });
    expect(await jobCount()).toBe(before);
  });

  it("a delay of exactly 100 years is taken, and its run time reads back", async () => {
    const job = await queue.enqueue("far", {}, { delayMs: 3_155_760_000_000 });
    expect(Number.isNaN(job.runAt.getTime())).toBe(false);
    const got = await call("GET", `/jobs/${job.id}`);
    expect(v.safeParse(jobSchema, got.json).success).toBe(true);
    expect((await call("GET", `/dashboard/jobs/${job.id}`)).status).toBe(200);
  });
});

describe("queue and schedule names Postgres cannot store", () => {
  it("configureQueue / getQueueConfig / removeSchedule / addSchedule with a NUL in a name throw INVALID_INPUT, not a PostgresError", async () => {
    for (const f of [
      () => queue.configureQueue("a\u0000b", { concurrency: 1 }),
      () => queue.pauseQueue("a\u0000b"),
      () => queue.getQueueConfig("a\u0000b"),
      () => queue.removeSchedule("a\u0000b"),
      () => queue.addSchedule({ name: "a\u0000b", cron: "* * * * *", task: "t" }),
      () => queue.addSchedule({ name: "nul-queue", cron: "* * * * *", task: "t", queue: "q\u0000" }),
    ]) {
      expect(await thrown(f)).toMatchObject({ name: "PgPulseError", code: "INVALID_INPUT" });
    }
  });

  it("pauseQueue with a lone surrogate is refused, not applied to another queue ('a\\uFFFD')", async () => {
    const r = await thrown(() => queue.pauseQueue("lone-\uD800"));
    const [row] = await sql.unsafe(`select count(*)::int as n from "${schema}".queues where name = $1`, ["lone-\uFFFD"]);
    expect(row!.n).toBe(0);
    expect(r).toMatchObject({ name: "PgPulseError", code: "INVALID_INPUT" });
  });
});

describe("a list cursor past the largest bigint", () => {
  it("queue.listJobs({ cursor: '9999999999999999999' }) throws INVALID_INPUT, not PostgresError 22003", async () => {
    expect(await thrown(() => queue.listJobs({ cursor: "9999999999999999999" }))).toMatchObject({ name: "PgPulseError", code: "INVALID_INPUT" });
  });

  it("pgpulse jobs list --cursor 9999999999999999999 exits 2 (bad flag), not 1 with a Postgres message", async () => {
    const r = await cli(["jobs", "list", "--cursor", "9999999999999999999"]);
    expect(r.stderr).not.toContain("out of range for type bigint");
    expect(r.code).toBe(2);
  });
});

describe("getJobLogs with an after past int4", () => {
  it("queue.getJobLogs(id, { after: 2 ** 40 }) throws INVALID_INPUT, not PostgresError 22003", async () => {
    const job = await queue.enqueue("t", {});
    expect(await thrown(() => queue.getJobLogs(job.id, { after: 2 ** 40 }))).toMatchObject({ name: "PgPulseError", code: "INVALID_INPUT" });
  });
});

describe("a retention too long for Postgres's timestamps", () => {
  it("POST /prune {completedMs: 1e15} answers 400 naming completedMs, not the safety net's 'database refused a value'", async () => {
    const details = expectError(await call("POST", "/prune", { json: { completedMs: 1e15 } }), 400, "INVALID_INPUT");
    expect(details).toEqual([expect.objectContaining({ path: "completedMs" })]);
  });

  it("queue.prune({ completedMs: 1e15 }) throws INVALID_INPUT, not PostgresError 22008", async () => {
    expect(await thrown(() => queue.prune({ completedMs: 1e15 }))).toMatchObject({ name: "PgPulseError", code: "INVALID_INPUT" });
  });

  it("pgpulse prune --completed 100000000d exits 2, not 1 with 'timestamp out of range'", async () => {
    const r = await cli(["prune", "--completed", "100000000d"]);
    expect(r.stderr).not.toContain("timestamp out of range");
    expect(r.code).toBe(2);
  });
});

describe("a schedule's payload is held to maxPayloadBytes, as a job's is", () => {
  it("PUT /schedules refuses a payload POST /jobs refuses; trigger does not enqueue an oversized job", async () => {
    const small = createQueue({ connection: DATABASE_URL, schema, maxPayloadBytes: 1000 });
    try {
      const app = createApi({ queue: small, auth: { tokens: [WRITE] }, logger: silentLogger });
      const c = apiClient(app, WRITE);
      const payload = { blob: "x".repeat(5000) };
      expectError(await c("POST", "/jobs", { json: { task: "t", payload } }), 400, "INVALID_PAYLOAD"); // the limit holds here
      const before = await jobCount();
      const put = await c("PUT", "/schedules/too-big", { json: { cron: "0 0 1 1 *", task: "t", payload } });
      const trig = await c("POST", "/schedules/too-big/trigger");
      expect({ put: put.status, trigger: trig.status, jobsAdded: (await jobCount()) - before }).toEqual({ put: 400, trigger: 404, jobsAdded: 0 });
    } finally {
      await small.close();
    }
  });

  it("queue.addSchedule refuses a payload over maxPayloadBytes (1 MiB by default)", async () => {
    const r = await thrown(() => queue.addSchedule({ name: "three-mb", cron: "0 0 1 1 *", task: "t", payload: { s: "x".repeat(3_000_000) } }));
    expect(r).toMatchObject({ name: "PgPulseError", code: "INVALID_PAYLOAD" });
  });
});

describe("GET /jobs/:id/events on a queue that cannot watch (a transaction-mode pooler)", () => {
  it("answers a typed error every time, never 429 when no stream is open", async () => {
    const job = await queue.enqueue("t", {});
    const pooled = createQueue({ connection: DATABASE_URL, schema, pooler: "transaction" });
    try {
      const app = createApi({ queue: pooled, auth: { tokens: [WRITE] }, logger: silentLogger, events: { maxStreams: 2 } });
      const c = apiClient(app, WRITE);
      const statuses: number[] = [];
      const codes: string[] = [];
      for (let i = 0; i < 4; i++) {
        const r = await c("GET", `/jobs/${job.id}/events`);
        statuses.push(r.status);
        codes.push(r.json?.error?.code);
      }
      // 503 with its reason each time: not a 500, and never 429 (no stream was open; the slot was not kept)
      expect(statuses).toEqual([503, 503, 503, 503]);
      expect(codes).toEqual(["UNAVAILABLE", "UNAVAILABLE", "UNAVAILABLE", "UNAVAILABLE"]);
    } finally {
      await pooled.close();
    }
  });
});

describe("responses carry only the fields the OpenAPI document describes", () => {
  const doc = openApiDocument("/") as any;
  const props = (name: string) => Object.keys(doc.components.schemas[name].properties);

  it("GET /jobs/:id has only the Job schema's fields (it also has meta)", async () => {
    const job = await queue.enqueue("t", {});
    const r = await call("GET", `/jobs/${job.id}`);
    expect(Object.keys(r.json).filter((k) => !props("Job").includes(k))).toEqual([]);
  });

  it("POST /batches's jobs have only EnqueuedJob's fields (they also carry internal names '#0', 'callbacks.success')", async () => {
    const r = await call("POST", "/batches", { json: { jobs: [{ task: "a" }], callbacks: { success: { task: "b" } } } });
    expect(r.status).toBe(201);
    const extra = [...r.json.jobs, r.json.callbacks.success].flatMap((j: object) => Object.keys(j).filter((k) => !props("EnqueuedJob").includes(k)));
    expect(extra).toEqual([]);
  });
});

describe("a schedule's explicit null payload", () => {
  it("PUT /schedules {payload: null} keeps null, as POST /jobs does", async () => {
    const job = await call("POST", "/jobs", { json: { task: "t", payload: null } });
    expect(job.json.payload).toBeNull();
    const r = await call("PUT", "/schedules/null-payload", { json: { cron: "0 0 1 1 *", task: "t", payload: null } });
    expect(r.status).toBe(201);
    expect(r.json.payload).toBeNull();
  });
});
