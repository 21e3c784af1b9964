/**
 * The bulk endpoints of the HTTP API (POST /jobs/retry, /jobs/cancel,
 * /jobs/delete) and GET /jobs's filters, through app.request(): counts checked
 * against the schema the OpenAPI document is generated from, a read-only
 * token refused, and bad input a 4xx that changes nothing.
 */
import * as v from "valibot";
import { describe, expect, it } from "vitest";
import { bulkResultSchema, jobListSchema } from "../src/api/index.ts";
import { apiFixture, expectError, READ } from "./support/api.ts";
import { testDb } from "./support/db.ts";

const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;
const s = `"${schema}"`;
const { call } = apiFixture(db);

/** Enqueues jobs and sets their status (and finish time) as a run would have. */
async function jobs(queueName: string, list: { status: string; payload?: unknown; group?: string; key?: string }[]): Promise<string[]> {
  const ids: string[] = [];
  for (const j of list) {
    const job = await queue.enqueue("t", j.payload ?? {}, { queue: queueName, ...(j.group ? { group: j.group } : {}), delayMs: 3_600_000 });
    await sql.unsafe(
      `update ${s}.jobs set status = $2::text::${s}.job_status, key = $3,
         finished_at = case when $2 in ('completed', 'failed', 'cancelled') then now() end where id = $1`,
      [job.id, j.status, j.key ?? null],
    );
    ids.push(job.id);
  }
  return ids;
}

async function statuses(ids: string[]): Promise<string[]> {
  const rows = await sql.unsafe(`select id::text, status::text from ${s}.jobs where id = any($1::bigint[])`, [ids]);
  const by = new Map(rows.map((r) => [r.id as string, r.status as string]));
  return ids.map((id) => by.get(id) ?? "gone");
}

async function snapshot(): Promise<string> {
  const [r] = await sql.unsafe(`select coalesce(string_agg(md5(j::text), ',' order by j.id), '') as rows from ${s}.jobs j`);
  return r!.rows as string;
}

describe("POST /jobs/retry, /jobs/cancel and /jobs/delete", () => {
  it("retry, cancel and delete the jobs a filter matches, and answer with the counts", async () => {
    const ids = await jobs("api-bulk", [
      { status: "failed", payload: { tenant: "acme", n: 1 } },
      { status: "failed", payload: { tenant: "acme", n: 2 }, key: "k" },
      { status: "queued", payload: { tenant: "acme", n: 3 }, key: "k" },
      { status: "cancelled", payload: { tenant: "other" } },
    ]);
    const dry = await call("POST", "/jobs/retry", { json: { filter: { queue: "api-bulk", payload: { tenant: "acme" } }, dryRun: true } });
    expect(dry.status, dry.text).toBe(200);
    expect(v.parse(bulkResultSchema, dry.json)).toMatchObject({ matched: 2, changed: 1, skipped: 1, reasons: { key: 1 }, dryRun: true, batches: 0 });
    expect(await statuses(ids)).toEqual(["failed", "failed", "queued", "cancelled"]);

    const retried = await call("POST", "/jobs/retry", { json: { filter: { queue: "api-bulk", payload: { tenant: "acme" } }, batchSize: 1 } });
    expect(retried.status, retried.text).toBe(200);
    expect(v.parse(bulkResultSchema, retried.json)).toEqual({
      matched: 2, changed: 1, skipped: 1, reasons: { key: 1, parent: 0, children: 0, batch: 0, busy: 0 }, stopping: 0, batches: 2, dryRun: false,
    });
    expect(await statuses(ids)).toEqual(["queued", "failed", "queued", "cancelled"]);

    const cancelled = await call("POST", "/jobs/cancel", { json: { filter: { queue: "api-bulk", status: "queued" } } });
    expect(v.parse(bulkResultSchema, cancelled.json)).toMatchObject({ matched: 2, changed: 2, skipped: 0 });
    expect(await statuses(ids)).toEqual(["cancelled", "failed", "cancelled", "cancelled"]);

    const deleted = await call("POST", "/jobs/delete", { json: { filter: { queue: "api-bulk", finishedFrom: "2020-01-01T00:00:00Z" } } });
    expect(v.parse(bulkResultSchema, deleted.json)).toMatchObject({ matched: 4, changed: 4, skipped: 0 });
    expect(await statuses(ids)).toEqual(["gone", "gone", "gone", "gone"]);
  });

  it("refuses a delete with an empty filter (400 EMPTY_FILTER), changing nothing, unless all is true", async () => {
    const ids = await jobs("api-empty", [{ status: "completed" }, { status: "queued" }]);
    const before = await snapshot();
    for (const filter of [{}, { payload: {} }]) {
      const details = expectError(await call("POST", "/jobs/delete", { json: { filter } }), 400, "EMPTY_FILTER");
      expect(details).toEqual([{ path: "filter", message: "empty" }]);
    }
    expectError(await call("POST", "/jobs/delete", { json: { filter: {}, all: false } }), 400, "EMPTY_FILTER");
    expect(await snapshot()).toBe(before);
    const all = await call("POST", "/jobs/delete", { json: { filter: {}, all: true } });
    expect(all.status).toBe(200);
    expect(all.json.changed).toBeGreaterThanOrEqual(1);
    expect(await statuses(ids)).toEqual(["gone", "queued"]);
  });

  it("answers 403 to a read-only token on each, changing nothing; it may list with the same filters", async () => {
    const ids = await jobs("api-ro-bulk", [{ status: "failed", group: "g1" }, { status: "queued", group: "g1" }, { status: "completed", group: "g1" }]);
    const before = await snapshot();
    for (const action of ["retry", "cancel", "delete"]) {
      expectError(await call("POST", `/jobs/${action}`, { token: READ, json: { filter: { queue: "api-ro-bulk" } } }), 403, "FORBIDDEN");
    }
    expect(await snapshot()).toBe(before);
    const list = await call("GET", "/jobs?queue=api-ro-bulk&group=g1&status=failed", { token: READ });
    expect(list.status).toBe(200);
    expect(v.parse(jobListSchema, list.json).jobs.map((j) => j.id)).toEqual([ids[0]]);
  });

  it("answers 400 with each field's path for bad bodies and filters, and 415 for a body that is not JSON, changing nothing", async () => {
    await jobs("api-bad", [{ status: "failed" }, { status: "completed" }]);
    const before = await snapshot();
    const cases: [string, unknown, string[]][] = [
      ["retry", { filter: { queue: "api-bad", colour: "red" } }, ["filter.colour"]],
      ["retry", { filter: { queue: "api-bad" }, batchSize: 0, extra: 1 }, ["batchSize", "extra"]],
      ["retry", { queue: "api-bad" }, ["filter", "queue"]],
      ["retry", { filter: { status: "completed" } }, ["filter.status"]],
      ["cancel", { filter: { createdFrom: "last week" } }, ["filter.createdFrom"]],
      ["cancel", { filter: { createdFrom: "2026-03-01", createdTo: "2026-02-01" } }, ["filter.createdTo"]],
      ["delete", { filter: { finishedTo: "2026-02-30" } }, ["filter.finishedTo"]],
      ["delete", { filter: { queue: "api-bad" }, all: "yes" }, ["all"]],
      ["delete", { filter: { payload: { x: "a\u0000b" } } }, ["filter.payload.x"]],
      ["retry", [], ["filter"]],
    ];
    for (const [action, body, paths] of cases) {
      const r = await call("POST", `/jobs/${action}`, { json: body });
      const details = expectError(r, 400, "INVALID_INPUT");
      expect(details.map((d: { path: string }) => d.path).sort(), `${action} ${JSON.stringify(body)}`).toEqual(paths);
    }
    expectError(await call("POST", "/jobs/retry"), 400, "INVALID_INPUT");
    expectError(await call("POST", "/jobs/retry", { body: "filter=x", headers: { "content-type": "application/x-www-form-urlencoded" } }), 415, "UNSUPPORTED_MEDIA_TYPE");
    expect(await snapshot()).toBe(before);
  });
});

describe("GET /jobs filters", () => {
  it("filters by group, key, created and finished ranges and payload containment", async () => {
    const ids = await jobs("api-list", [
      { status: "failed", group: "g-a", key: "key-a", payload: { user: { id: 7 }, plan: "pro" } },
      { status: "completed", group: "g-b", payload: { user: { id: 8 } } },
      { status: "queued", group: "g-a" },
    ]);
    await sql.unsafe(`update ${s}.jobs set created_at = '2026-01-01T00:00:00Z', finished_at = '2026-01-05T12:00:00Z' where id = $1`, [ids[1]!]);
    const list = async (query: string) => {
      const r = await call("GET", `/jobs?queue=api-list&${query}`);
      expect(r.status, r.text).toBe(200);
      return v.parse(jobListSchema, r.json).jobs.map((j) => j.id);
    };
    expect(await list("group=g-a")).toEqual([ids[2], ids[0]]);
    expect(await list("key=key-a")).toEqual([ids[0]]);
    expect(await list("createdTo=2026-01-02")).toEqual([ids[1]]);
    expect(await list("createdFrom=2026-01-02T00:00:00Z")).toEqual([ids[2], ids[0]]);
    expect(await list("finishedFrom=2026-01-05&finishedTo=2026-01-05T13:00:00%2B01:00")).toEqual([]);
    expect(await list("finishedFrom=2026-01-05&finishedTo=2026-01-05T13:00:00Z")).toEqual([ids[1]]);
    expect(await list(`payload=${encodeURIComponent(JSON.stringify({ user: { id: 7 } }))}`)).toEqual([ids[0]]);
    expect(await list(`payload=${encodeURIComponent("{}")}&group=g-b`)).toEqual([ids[1]]);
  });

  it("answers 400 for bad filter parameters, naming them", async () => {
    const bad: [string, string][] = [
      ["payload=%7Bnot json", "payload"],
      [`payload=${encodeURIComponent('{"a":"\\u0000"}')}`, "payload.a"],
      ["createdFrom=yesterday", "createdFrom"],
      ["createdFrom=2026-01-02&createdTo=2026-01-01", "createdTo"],
      ["group=", "group"],
      ["colour=red", "colour"],
    ];
    for (const [query, path] of bad) {
      const r = await call("GET", `/jobs?${query}`);
      expect(r.status, `${query}: ${r.text}`).toBe(400);
      expect(r.json.error.details.map((d: { path: string }) => d.path), query).toContain(path);
    }
  });

  it("the OpenAPI document describes the bulk endpoints and the list's filters", async () => {
    const { json: doc } = await call("GET", "/openapi.json");
    for (const action of ["retry", "cancel", "delete"]) {
      const op = doc.paths[`/jobs/${action}`].post;
      expect(op.responses["200"].content["application/json"].schema).toEqual({ $ref: "#/components/schemas/BulkResult" });
      expect(op.responses["403"]).toBeDefined();
    }
    expect(doc.components.schemas.DeleteRequest.properties.all).toMatchObject({ type: "boolean" });
    expect(doc.components.schemas.BulkRequest.required).toEqual(["filter"]);
    expect(doc.components.schemas.BulkRequest.properties.filter.properties.createdFrom).toMatchObject({ type: "string", pattern: expect.any(String) });
    const names = doc.paths["/jobs"].get.parameters.map((p: { name: string }) => p.name);
    expect(names).toEqual(["status", "queue", "task", "group", "key", "createdFrom", "createdTo", "finishedFrom", "finishedTo", "payload", "limit", "cursor"]);
  });
});
