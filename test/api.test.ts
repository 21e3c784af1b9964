/**
 * The job endpoints of the HTTP API through app.request(): enqueue, read, list,
 * cancel and retry, with every error path, and that bad input is a 4xx that
 * writes nothing. Responses are checked against the valibot schemas the
 * OpenAPI document is generated from. (Operations endpoints: api-ops.test.ts.)
 */
import * as v from "valibot";
import { afterAll, describe, expect, it } from "vitest";
import { createApi, enqueuedJobSchema, jobListSchema, jobSchema } from "../src/api/index.ts";
import { createQueue, defineTask, PermanentError, silentLogger } from "../src/index.ts";
import { apiFixture, expectError, READ, WRITE } from "./support/api.ts";
import { DATABASE_URL, deadline, testDb } from "./support/db.ts";

const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;

const { app, call, jobCount } = apiFixture(db);

describe("POST /jobs", () => {
  it("enqueues with every option: 201, the job, and a Location", async () => {
    const r = await call("POST", "/jobs", {
      json: { task: "resize", payload: { url: "a.png" }, queue: "api-enq", priority: 4, delayMs: 60_000, maxAttempts: 3, timeoutMs: 5000, key: "k-1" },
    });
    expect(r.status).toBe(201);
    const job = v.parse(enqueuedJobSchema, r.json);
    expect(job).toMatchObject({ task: "resize", payload: { url: "a.png" }, queue: "api-enq", priority: 4, maxAttempts: 3, timeoutMs: 5000, key: "k-1", status: "queued", deduplicated: false });
    expect(Date.parse(job.runAt) - Date.parse(job.createdAt)).toBe(60_000);
    expect(r.headers.get("location")).toBe(`/jobs/${job.id}`);
    expect(await queue.getJob(job.id)).toMatchObject({ task: "resize", key: "k-1" });
  });

  it("takes runAt, and defaults the payload to {}", async () => {
    const runAt = new Date(Date.now() + 3_600_000).toISOString();
    const r = await call("POST", "/jobs", { json: { task: "later", runAt } });
    expect(r.status).toBe(201);
    expect(r.json).toMatchObject({ payload: {}, runAt, queue: "default" });
  });

  it("answers 200 with the existing job when the key deduplicates", async () => {
    const first = await call("POST", "/jobs", { json: { task: "once", key: "dedup-1", payload: { n: 1 } } });
    const again = await call("POST", "/jobs", { json: { task: "once", key: "dedup-1", payload: { n: 2 } } });
    expect(first.status).toBe(201);
    expect(again.status).toBe(200);
    expect(again.json).toMatchObject({ id: first.json.id, deduplicated: true, payload: { n: 1 } });
    expect(again.headers.get("location")).toBeNull();
  });

  it("answers 400 with every field path for invalid input, and writes nothing", async () => {
    const before = await jobCount();
    const r = await call("POST", "/jobs", { json: { task: "", priority: 1.5, maxAttempts: 0, runAt: "tomorrow", key: "", bogus: true } });
    const details = expectError(r, 400, "INVALID_INPUT");
    expect(details.map((d: { path: string }) => d.path).sort()).toEqual(["bogus", "key", "maxAttempts", "priority", "runAt", "task"]);
    expect(r.json.error.message).toContain("task must not be empty");
    expect(await jobCount()).toBe(before);
  });

  it("refuses runAt with delayMs, at delayMs", async () => {
    const r = await call("POST", "/jobs", { json: { task: "t", runAt: new Date().toISOString(), delayMs: 5 } });
    expect(expectError(r, 400, "INVALID_INPUT")).toEqual([{ path: "delayMs", message: "give runAt or delayMs, not both" }]);
  });

  it("never answers 500 to bad input, and never writes it", async () => {
    const before = await jobCount();
    const bodies: [string, string, string][] = [
      ["null", "null", "INVALID_INPUT"],
      ["a string", '"resize"', "INVALID_INPUT"],
      ["an array", '[{"task":"t"}]', "INVALID_INPUT"],
      ["a number task", '{"task":1}', "INVALID_INPUT"],
      ["no task", '{"payload":{}}', "INVALID_INPUT"],
      ["a long task", JSON.stringify({ task: "x".repeat(129) }), "INVALID_INPUT"],
      ["a huge priority", '{"task":"t","priority":1e20}', "INVALID_INPUT"],
      ["a negative delay", '{"task":"t","delayMs":-1}', "INVALID_INPUT"],
      ["a string delay", '{"task":"t","delayMs":"5s"}', "INVALID_INPUT"],
      ["a day that does not exist", '{"task":"t","runAt":"2026-02-30T00:00:00Z"}', "INVALID_INPUT"],
      ["year 0", '{"task":"t","runAt":"0000-01-01T00:00:00Z"}', "INVALID_INPUT"],
      ["an infinite payload number", '{"task":"t","payload":1e400}', "INVALID_PAYLOAD"],
      ["NUL in the payload", JSON.stringify({ task: "t", payload: { a: "x\u0000y" } }), "INVALID_PAYLOAD"],
      ["NUL in a payload key", JSON.stringify({ task: "t", payload: { ["k\u0000"]: 1 } }), "INVALID_PAYLOAD"],
      ["a lone surrogate", '{"task":"t","payload":"\\ud800"}', "INVALID_PAYLOAD"],
      ["NUL in the task", JSON.stringify({ task: "t\u0000" }), "INVALID_INPUT"],
      ["NUL in the queue", JSON.stringify({ task: "t", queue: "q\u0000" }), "INVALID_INPUT"],
      ["NUL in the key", JSON.stringify({ task: "t", key: "k\u0000" }), "INVALID_INPUT"],
      ["deep nesting", `{"task":"t","payload":${"[".repeat(100_000)}${"]".repeat(100_000)}}`, "INVALID_PAYLOAD"],
      ["__proto__", '{"task":"t","__proto__":{"x":1}}', "INVALID_INPUT"],
      ["malformed JSON", '{"task": "t",', "INVALID_INPUT"],
      ["bad UTF-8", "\uFFFF", "INVALID_INPUT"],
    ];
    for (const [what, body, code] of bodies) {
      const raw = what === "bad UTF-8" ? new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]) : body;
      const r = await call("POST", "/jobs", { body: raw, headers: { "content-type": "application/json" } });
      expect(r.status, `${what}: ${r.text}`).toBe(400);
      expect(r.json?.error?.code, what).toBe(code);
    }
    expect(await jobCount()).toBe(before);
  });

  it("answers 400 without a body", async () => {
    expectError(await call("POST", "/jobs", { headers: { "content-type": "application/json" } }), 400, "INVALID_INPUT");
    expectError(await call("POST", "/jobs", { body: "  ", headers: { "content-type": "application/json" } }), 400, "INVALID_INPUT");
  });

  it("answers 415 for a body that is not JSON", async () => {
    const before = await jobCount();
    expectError(await call("POST", "/jobs", { body: "task=t", headers: { "content-type": "application/x-www-form-urlencoded" } }), 415, "UNSUPPORTED_MEDIA_TYPE");
    expectError(await call("POST", "/jobs", { body: '{"task":"t"}', headers: { "content-type": "text/plain" } }), 415, "UNSUPPORTED_MEDIA_TYPE");
    expectError(await call("POST", "/jobs", { body: new Blob(['{"task":"t"}']) }), 415, "UNSUPPORTED_MEDIA_TYPE");
    // application/*+json and a charset are JSON
    expect((await call("POST", "/jobs", { body: '{"task":"t"}', headers: { "content-type": "application/vnd.api+json; charset=utf-8" } })).status).toBe(201);
    expect(await jobCount()).toBe(before + 1);
  });

  it("answers 413 past the body limit, by Content-Length or while streaming", async () => {
    const before = await jobCount();
    const big = JSON.stringify({ task: "t", payload: { blob: "x".repeat(1024 * 1024) } });
    const r = await call("POST", "/jobs", { body: big, headers: { "content-type": "application/json" } });
    expect(expectError(r, 413, "PAYLOAD_TOO_LARGE")).toEqual({ limit: 1024 * 1024 });

    // No Content-Length: a stream that would go on for 8 MiB is cut off past the limit.
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 8 * 1024 * 1024) return controller.close();
        sent += 64 * 1024;
        controller.enqueue(new TextEncoder().encode(sent === 64 * 1024 ? `{"task":"t","payload":"${"x".repeat(64 * 1024 - 23)}` : "x".repeat(64 * 1024)));
      },
    });
    const res = await app.request("/jobs", {
      method: "POST",
      headers: { authorization: `Bearer ${WRITE}`, "content-type": "application/json" },
      body: stream,
      duplex: "half",
    } as RequestInit);
    expect(res.status).toBe(413);
    expect(sent).toBeLessThan(2 * 1024 * 1024);

    const small = createApi({ queue, auth: { tokens: [WRITE] }, maxBodyBytes: 64, logger: silentLogger });
    expectError(await call("POST", "/jobs", { json: { task: "t", payload: "y".repeat(64) } }, small), 413, "PAYLOAD_TOO_LARGE");
    expect(await jobCount()).toBe(before);
  });

  it("passes the queue's own payload limit on as INVALID_PAYLOAD", async () => {
    const tight = createQueue({ connection: DATABASE_URL, schema, maxPayloadBytes: 100 });
    try {
      const api = createApi({ queue: tight, auth: { tokens: [WRITE] }, logger: silentLogger });
      const details = expectError(await call("POST", "/jobs", { json: { task: "t", payload: "z".repeat(200) } }, api), 400, "INVALID_PAYLOAD");
      expect(details[0].path).toBe("payload");
    } finally {
      await tight.close();
    }
  });
});

describe("GET /jobs/:id", () => {
  it("shows status, progress, result, errors per attempt, attempts and timestamps", async () => {
    let calls = 0;
    const flaky = defineTask({
      name: "api-flaky",
      backoff: { baseMs: 1, maxMs: 5 },
      handler: async (_payload: unknown, ctx) => {
        ctx.progress(40);
        if (++calls === 1) throw new TypeError("first attempt <b>fails</b>");
        return { ok: true, calls };
      },
    });
    const worker = db.worker({ queues: ["api-get"], tasks: { "api-flaky": flaky }, pollIntervalMs: 100 });
    await worker.start();
    const completed = worker.waitFor("job:completed", (e) => e.job.task === "api-flaky", deadline());
    const created = await call("POST", "/jobs", { json: { task: "api-flaky", queue: "api-get", payload: { n: 7 } } });
    expect((await completed).job.id).toBe(created.json.id);

    const r = await call("GET", `/jobs/${created.json.id}`);
    expect(r.status).toBe(200);
    const job = v.parse(jobSchema, r.json);
    expect(job).toMatchObject({ status: "completed", progress: 100, result: { ok: true, calls: 2 }, attempts: 2, payload: { n: 7 } });
    expect(job.errors).toHaveLength(1);
    expect(job.errors[0]).toMatchObject({ attempt: 1, name: "TypeError", message: "first attempt <b>fails</b>", worker: worker.id });
    expect(job.errors[0]!.stack).toContain("TypeError: first attempt");
    expect(job.startedAt).not.toBeNull();
    expect(Date.parse(job.finishedAt!)).toBeGreaterThanOrEqual(Date.parse(job.startedAt!));
    expect(Date.parse(job.startedAt!)).toBeGreaterThanOrEqual(Date.parse(job.createdAt));
    expect("deduplicated" in r.json).toBe(false);
  });

  it("answers 404 for a job that does not exist and 400 for an id that cannot be one", async () => {
    expectError(await call("GET", "/jobs/987654321"), 404, "NOT_FOUND");
    for (const bad of ["abc", "0", "-1", "1.5", "01", "9223372036854775808", "99999999999999999999"]) {
      const details = expectError(await call("GET", `/jobs/${bad}`), 400, "INVALID_INPUT");
      expect(details[0].path, bad).toBe("");
    }
  });
});

describe("GET /jobs", () => {
  it("pages newest first with a keyset cursor, and filters by status, queue and task", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await call("POST", "/jobs", { json: { task: i % 2 ? "odd" : "even", queue: "api-list", payload: { i } } })).json.id);
    await queue.cancel(ids[4]!);

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const r = await call("GET", `/jobs?queue=api-list&limit=2${cursor ? `&cursor=${cursor}` : ""}`);
      expect(r.status).toBe(200);
      const page = v.parse(jobListSchema, r.json);
      expect(page.jobs.length).toBeLessThanOrEqual(2);
      seen.push(...page.jobs.map((j) => j.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());

    const odd = await call("GET", "/jobs?queue=api-list&task=odd");
    expect(odd.json.jobs.map((j: { id: string }) => j.id)).toEqual([ids[3], ids[1]]);
    const cancelled = await call("GET", "/jobs?queue=api-list&status=cancelled");
    expect(cancelled.json.jobs.map((j: { id: string }) => j.id)).toEqual([ids[4]]);
    const none = await call("GET", "/jobs?queue=api-list&status=running");
    expect(none.json).toEqual({ jobs: [], nextCursor: null });
  });

  it("filters by status=pending: jobs of a flow waiting for their parents", async () => {
    const [parent, child] = await queue.enqueueFlow([
      { name: "p", task: "t", queue: "api-pending", delayMs: 600_000 },
      { name: "c", task: "t", queue: "api-pending", parents: ["p"] },
    ]);
    const r = await call("GET", "/jobs?queue=api-pending&status=pending");
    expect(v.parse(jobListSchema, r.json).jobs.map((j) => [j.id, j.status])).toEqual([[child!.id, "pending"]]);
    expect((await call("GET", "/jobs?queue=api-pending&status=queued")).json.jobs.map((j: { id: string }) => j.id)).toEqual([parent!.id]);
  });

  it("answers 400 for bad parameters, naming them", async () => {
    const cases: [string, string][] = [
      ["status=done", "status"],
      ["limit=0", "limit"],
      ["limit=501", "limit"],
      ["limit=ten", "limit"],
      ["limit=1.5", "limit"],
      ["cursor=abc", "cursor"],
      ["cursor=9223372036854775808", "cursor"],
      ["queue=", "queue"],
      ["queue=%00", "queue"],
      ["sort=asc", "sort"],
      ["limit=1&limit=2", "limit"],
    ];
    for (const [q, path] of cases) {
      const details = expectError(await call("GET", `/jobs?${q}`), 400, "INVALID_INPUT");
      expect(details.map((d: { path: string }) => d.path), q).toContain(path);
    }
  });
});

describe("POST /jobs/:id/cancel and /retry", () => {
  it("cancels a queued job, retries it, and answers 409 with the current state for what cannot be", async () => {
    const { json: job } = await call("POST", "/jobs", { json: { task: "t", queue: "api-transitions", delayMs: 600_000 } });
    const cancelled = await call("POST", `/jobs/${job.id}/cancel`);
    expect(cancelled.status).toBe(200);
    expect(v.parse(jobSchema, cancelled.json)).toMatchObject({ id: job.id, status: "cancelled" });

    const again = await call("POST", `/jobs/${job.id}/cancel`);
    const details = expectError(again, 409, "INVALID_TRANSITION");
    expect(details).toMatchObject({ status: "cancelled", job: { id: job.id, status: "cancelled" } });

    const retried = await call("POST", `/jobs/${job.id}/retry`, { json: {} });
    expect(retried.status).toBe(200);
    expect(retried.json).toMatchObject({ id: job.id, status: "queued" });

    expect(expectError(await call("POST", `/jobs/${job.id}/retry`), 409, "INVALID_TRANSITION")).toMatchObject({ status: "queued" });
  });

  it("refuses to retry a completed job and to cancel a failed one", async () => {
    const worker = db.worker({
      queues: ["api-final"],
      tasks: { ok: async () => "done", nope: async () => { throw new PermanentError("no <way>"); } },
    });
    await worker.start();
    const ended = Promise.all([worker.waitFor("job:completed", undefined, deadline()), worker.waitFor("job:failed", undefined, deadline())]);
    const ok = (await call("POST", "/jobs", { json: { task: "ok", queue: "api-final" } })).json;
    const nope = (await call("POST", "/jobs", { json: { task: "nope", queue: "api-final" } })).json;
    await ended;
    expect(expectError(await call("POST", `/jobs/${ok.id}/retry`), 409, "INVALID_TRANSITION")).toMatchObject({ status: "completed" });
    expect(expectError(await call("POST", `/jobs/${nope.id}/cancel`), 409, "INVALID_TRANSITION")).toMatchObject({ status: "failed" });
    const failedAgain = worker.waitFor("job:failed", (e) => e.job.id === nope.id, deadline());
    const retried = await call("POST", `/jobs/${nope.id}/retry`);
    expect(retried.json).toMatchObject({ status: "queued" });
    await failedAgain;
  });

  it("cancelling a parent ends its pending child, whose error names it; the child is retried through its parent (409)", async () => {
    const [parent, child] = await queue.enqueueFlow([
      { name: "p", task: "t", queue: "api-parent", delayMs: 600_000 },
      { name: "c", task: "t", queue: "api-parent", parents: ["p"] },
    ]);
    expect((await call("POST", `/jobs/${child!.id}/cancel`, { token: READ })).status).toBe(403);
    expect((await call("POST", `/jobs/${parent!.id}/cancel`)).json).toMatchObject({ status: "cancelled" });
    const ended = v.parse(jobSchema, (await call("GET", `/jobs/${child!.id}`)).json);
    expect(ended).toMatchObject({ status: "failed", attempts: 0, batchId: null });
    expect(ended.errors.at(-1)).toMatchObject({ name: "ParentCancelled", parent: parent!.id });
    const refused = expectError(await call("POST", `/jobs/${child!.id}/retry`), 409, "INVALID_TRANSITION");
    expect(refused).toMatchObject({ status: "failed", reason: "parent", parent: parent!.id, job: { id: child!.id } });
    expect((await call("POST", `/jobs/${parent!.id}/retry`)).json).toMatchObject({ status: "queued" });
    expect((await call("GET", `/jobs/${child!.id}`)).json).toMatchObject({ status: "pending" });
  });

  it("answers 404, 400, 415 and 413 like the other endpoints, changing nothing", async () => {
    const { json: job } = await call("POST", "/jobs", { json: { task: "t", queue: "api-transitions-bad", delayMs: 600_000 } });
    expectError(await call("POST", "/jobs/987654321/cancel"), 404, "NOT_FOUND");
    expectError(await call("POST", "/jobs/987654321/retry"), 404, "NOT_FOUND");
    expectError(await call("POST", "/jobs/x/cancel"), 400, "INVALID_INPUT");
    expect(expectError(await call("POST", `/jobs/${job.id}/cancel`, { json: { force: true } }), 400, "INVALID_INPUT")[0].path).toBe("force");
    expectError(await call("POST", `/jobs/${job.id}/cancel`, { body: "now", headers: { "content-type": "text/plain" } }), 415, "UNSUPPORTED_MEDIA_TYPE");
    const small = createApi({ queue, auth: { tokens: [WRITE] }, maxBodyBytes: 8, logger: silentLogger });
    expectError(await call("POST", `/jobs/${job.id}/cancel`, { json: { padding: "0123456789" } }, small), 413, "PAYLOAD_TOO_LARGE");
    expect(await queue.getJob(job.id)).toMatchObject({ status: "queued" });
  });
});

afterAll(async () => {
  // Every job this file wrote has a task name a test chose; nothing was written by a rejected request.
  const [row] = await sql.unsafe(`select count(*)::int as n from "${schema}".jobs where task = ''`);
  expect(row!.n).toBe(0);
});

